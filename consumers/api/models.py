"""Request and response bodies of the API (decimals travel as exact strings, as everywhere in tickwire)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from domain.positions import normalize_account, parse_decimal
from schemas.events import DecimalStr, IngestStatus, PriceSource
from schemas.symbols import normalize_symbol
from schemas.topics import DEFAULT_ACCOUNT

MAX_SYMBOLS_PER_REQUEST = 100


def _decimal_field(name: str) -> BeforeValidator:
    return BeforeValidator(lambda value: parse_decimal(value, name))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscribeRequest(_Body):
    """``POST /api/v1/subscribe``: symbols to stream (upper-cased, duplicates dropped)."""

    symbols: list[str] = Field(min_length=1, max_length=MAX_SYMBOLS_PER_REQUEST,
                               examples=[["AAPL", "MSFT", "GOOGL"]])

    @field_validator("symbols")
    @classmethod
    def _normalise(cls, symbols: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_symbol(s) for s in symbols))


class SubscribeResponse(BaseModel):
    """What ``POST /api/v1/subscribe`` did (ADR-0010 shape)."""

    message: str
    subscribed_symbols: list[str]
    total_subscriptions: int = Field(description="symbols subscribed through the API, after this call")


class UnsubscribeResponse(BaseModel):
    """What ``DELETE /api/v1/subscribe/{symbol}`` did."""

    message: str
    remaining_subscriptions: int


class SubscriptionsResponse(BaseModel):
    """``GET /api/v1/subscriptions``: what the API asked for, and what the ingest actually streams."""

    symbols: list[str] = Field(description="symbols subscribed through the API")
    count: int
    streaming: list[str] | None = Field(
        description="symbols the ingest streams (all sources); null: ingest not running")
    pending: list[str] = Field(description="API subscriptions the ingest does not stream (yet)")


class PositionUpdate(_Body):
    """``PUT /api/v1/positions/{symbol}``: the position as its owner reports it (qty "0" closes it)."""

    qty: Annotated[Decimal, _decimal_field("qty")] = Field(examples=["100"])
    avg_entry_price: Annotated[Decimal, _decimal_field("avg_entry_price")] = Field(examples=["150.25"])
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


class PositionOut(BaseModel):
    """A position as stored (``Position``)."""

    account: str
    symbol: str
    qty: DecimalStr
    avg_entry_price: DecimalStr
    updated_at: str


class PositionAccepted(BaseModel):
    """``PUT /api/v1/positions/{symbol}``: the record published to the ``positions`` topic."""

    message: str
    position: PositionOut


class PositionsResponse(BaseModel):
    """``GET /api/v1/positions``: an account's open positions."""

    account: str
    positions: list[PositionOut]
    count: int


class PositionPnLOut(BaseModel):
    """One row of ``GET /api/v1/positions/pnl/realtime`` (ADR-0010 shape)."""

    symbol: str
    qty: DecimalStr
    avg_entry_price: DecimalStr
    current_price: DecimalStr | None
    unrealized_pnl: DecimalStr | None
    price_source: PriceSource
    last_updated: str | None = Field(description="exchange time of the quote/trade or close that marks it")


class RealtimePnLResponse(BaseModel):
    """``GET /api/v1/positions/pnl/realtime``."""

    account: str
    mark_policy: str
    positions: list[PositionPnLOut]
    total_unrealized: DecimalStr


class ComponentHealth(BaseModel):
    """Whether one dependency answered, and why not."""

    ok: bool
    detail: str = ""


class HealthResponse(BaseModel):
    """``GET /health`` (503 when unhealthy)."""

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

    processor: dict[str, int]
    ingest: IngestStatus | None
    ingest_running: bool


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a response model (decimals as strings)."""
    return model.model_dump(mode="json")
