"""Request and response bodies of the API (decimals travel as exact strings, as everywhere in tickwire)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from domain.positions import normalize_account, parse_decimal
from schemas.events import DecimalStr, IngestStatus, PriceSource
from schemas.symbols import normalize_symbol
from schemas.topics import DEFAULT_ACCOUNT

MAX_SYMBOLS_PER_REQUEST = 100


DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # plain notation, ASCII digits
EXAMPLE_TIME = "2026-12-02T16:45:12.123456789Z"  # exchange/update times in the examples


def decimal_string(value: Any, name: str) -> Decimal:
    """A money/quantity field: only a decimal string; a JSON number is refused, saying why."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'{name} must be a decimal string such as "{value}", not a JSON number '
                         "(numbers lose precision in many JSON parsers)")
    result = parse_decimal(value, name)  # says what is wrong with "ten" or "NaN"
    if not re.fullmatch(DECIMAL_PATTERN, value):
        raise ValueError(f"{name} must be plain digits such as \"1000\" or \"0.5\", got {value!r}")
    return result


def _decimal_field(name: str, example: str) -> tuple[BeforeValidator, WithJsonSchema]:
    return (BeforeValidator(lambda value: decimal_string(value, name)),
            WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": [example],
                            "description": "a decimal string; JSON numbers are refused (422)"}))


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValidationErrorItem(BaseModel):
    """One reason a request was refused, as pydantic reports it."""

    model_config = _examples({"loc": ["body", "qty"], "msg": "Value error, qty is not a decimal number: 'ten'",
                              "type": "value_error"})

    loc: list[str | int] = Field(description="where: body/path/query, then the field")
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """Every 422: one readable line, and the individual errors for programs."""

    model_config = _examples({"detail": "qty is not a decimal number: 'ten'",
                              "errors": [{"loc": ["body", "qty"], "msg": "Value error, qty is not a decimal "
                                          "number: 'ten'", "type": "value_error"}]})

    detail: str = Field(description="every error on one line: 'field: what is wrong; ...'")
    errors: list[ValidationErrorItem]


class ErrorBody(BaseModel):
    """Every other 4xx and 503: one line saying what is wrong."""

    model_config = _examples({"detail": "broker unavailable: publish failed (timed out)"})

    detail: str


class SubscribeRequest(_Body):
    """``POST /api/v1/subscribe``: symbols to stream (upper-cased, duplicates dropped)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"symbols": ["AAPL", "MSFT"]}]})

    symbols: list[str] = Field(min_length=1, max_length=MAX_SYMBOLS_PER_REQUEST,
                               examples=[["AAPL", "MSFT", "GOOGL"]])

    @field_validator("symbols")
    @classmethod
    def _normalise(cls, symbols: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_symbol(s) for s in symbols))


class SubscribeResponse(BaseModel):
    """What ``POST /api/v1/subscribe`` did (ADR-0010 shape)."""

    model_config = _examples({"message": "Successfully subscribed to 2 symbols",
                              "subscribed_symbols": ["AAPL", "MSFT"], "total_subscriptions": 3})

    message: str
    subscribed_symbols: list[str]
    total_subscriptions: int = Field(description="symbols subscribed through the API, after this call")


class UnsubscribeResponse(BaseModel):
    """What ``DELETE /api/v1/subscribe/{symbol}`` did."""

    model_config = _examples({"message": "Successfully unsubscribed from AAPL", "remaining_subscriptions": 2})

    message: str
    remaining_subscriptions: int


class SubscriptionsResponse(BaseModel):
    """``GET /api/v1/subscriptions``: what the API asked for, and what the ingest actually streams."""

    model_config = _examples({"symbols": ["AAPL", "NVDA"], "count": 2,
                              "streaming": ["AAPL", "GOOGL", "MSFT"], "pending": ["NVDA"]})

    symbols: list[str] = Field(description="symbols subscribed through the API")
    count: int
    streaming: list[str] | None = Field(
        description="symbols the ingest streams (all sources); null: ingest not running")
    pending: list[str] = Field(description="API subscriptions the ingest does not stream (yet)")


class PositionUpdate(_Body):
    """``PUT /api/v1/positions/{symbol}``: the position as its owner reports it (qty "0" closes it).

    ``qty`` and ``avg_entry_price`` are decimal strings (``"100"``, ``"-25"``, ``"150.25"``): a JSON
    number is refused with a 422 saying so, because many JSON parsers turn numbers into binary floats.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"qty": "100", "avg_entry_price": "150.25", "account": DEFAULT_ACCOUNT}]})

    qty: Annotated[Decimal, *_decimal_field("qty", "100")] = Field(
        description='shares; negative for a short, "0" closes the position')
    avg_entry_price: Annotated[Decimal, *_decimal_field("avg_entry_price", "150.25")] = Field(
        description="average entry price per share, not negative")
    account: str = Field(DEFAULT_ACCOUNT, examples=[DEFAULT_ACCOUNT])

    @field_validator("avg_entry_price")
    @classmethod
    def _not_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError(f"avg_entry_price must not be negative, got {value}")
        return value

    @field_validator("account")
    @classmethod
    def _valid_account(cls, value: str) -> str:
        return normalize_account(value)


_POSITION = {"account": "default", "symbol": "AAPL", "qty": "100", "avg_entry_price": "150.25",
             "updated_at": EXAMPLE_TIME}


class PositionOut(BaseModel):
    """A position as stored (``Position``)."""

    model_config = _examples(_POSITION)

    account: str
    symbol: str
    qty: DecimalStr
    avg_entry_price: DecimalStr
    updated_at: str


class PositionAccepted(BaseModel):
    """``PUT /api/v1/positions/{symbol}``: the record published to the ``positions`` topic."""

    model_config = _examples({"message": "AAPL position set for account default", "position": _POSITION})

    message: str
    position: PositionOut


class PositionsResponse(BaseModel):
    """``GET /api/v1/positions``: an account's open positions."""

    model_config = _examples({"account": "default", "count": 1, "positions": [_POSITION]})

    account: str
    positions: list[PositionOut]
    count: int


_PNL_ROW = {"symbol": "AAPL", "qty": "100", "avg_entry_price": "150.25", "current_price": "230.10",
            "unrealized_pnl": "7985.00", "price_source": "real-time", "last_updated": EXAMPLE_TIME}


class PositionPnLOut(BaseModel):
    """One row of ``GET /api/v1/positions/pnl/realtime`` (ADR-0010 shape)."""

    model_config = _examples(_PNL_ROW)

    symbol: str
    qty: DecimalStr
    avg_entry_price: DecimalStr
    current_price: DecimalStr | None
    unrealized_pnl: DecimalStr | None
    price_source: PriceSource
    last_updated: str | None = Field(description="exchange time of the quote/trade or close that marks it")


class RealtimePnLResponse(BaseModel):
    """``GET /api/v1/positions/pnl/realtime``."""

    model_config = _examples({"account": "default", "mark_policy": "mid", "positions": [_PNL_ROW],
                              "total_unrealized": "7985.00"})

    account: str
    mark_policy: str
    positions: list[PositionPnLOut]
    total_unrealized: DecimalStr


class HistoryPointOut(BaseModel):
    """One chart point: the last mid of a second."""

    model_config = _examples({"timestamp": EXAMPLE_TIME, "mid": "230.10"})

    timestamp: str = Field(description="exchange time of the quote, RFC 3339 UTC")
    mid: DecimalStr


class PriceHistoryResponse(BaseModel):
    """``GET /api/v1/prices/{symbol}/history``: recent mids from the ``prices`` topic, and the previous close."""

    model_config = _examples({"symbol": "AAPL", "seconds": 300, "previous_close": "228.50",
                              "points": [{"timestamp": EXAMPLE_TIME, "mid": "230.10"}], "detail": ""})

    symbol: str
    seconds: int = Field(description="how far back the points go")
    previous_close: DecimalStr | None = Field(description="the last official close (Redis close:{SYMBOL})")
    points: list[HistoryPointOut] = Field(description="one per second with a price, oldest first")
    detail: str = Field("", description="why there are no points although there may be prices (broker down)")


class ComponentHealth(BaseModel):
    """Whether one dependency answered, and why not."""

    model_config = _examples({"ok": False, "detail": "unreachable: timed out"})

    ok: bool
    detail: str = ""


class HealthResponse(BaseModel):
    """``GET /health`` (503 when unhealthy)."""

    model_config = _examples({
        "status": "healthy", "service": "market-data-service", "websocket_connected": True,
        "subscribed_symbols": 3, "reconnect_attempts": 0, "consumer_lag": 0,
        "redis": {"ok": True, "detail": ""}, "broker": {"ok": True, "detail": ""},
        "ingest": {"ok": True, "detail": "active, streaming 3 symbols"}, "problems": []})

    status: str = Field(description="healthy | degraded | unhealthy")
    service: str
    websocket_connected: bool
    subscribed_symbols: int
    reconnect_attempts: int | None
    consumer_lag: int | str = Field(description="messages the processor has not consumed, or 'unknown'")
    redis: ComponentHealth
    broker: ComponentHealth
    ingest: ComponentHealth
    prices: ComponentHealth = Field(description="whether the price stage keeps up with quotes.raw, per partition")
    problems: list[str]


class StatsResponse(BaseModel):
    """``GET /api/v1/stats``."""

    model_config = _examples({"processor": {"accepted": 1520, "published": 1520, "rejected.stale": 3},
                              "ingest": None, "ingest_running": False})

    processor: dict[str, int]
    ingest: IngestStatus | None
    ingest_running: bool


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a response model (decimals as strings)."""
    return model.model_dump(mode="json")
