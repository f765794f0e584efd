"""Alpaca's market-data REST API (``/v2/stocks/...``) served from the feed's history.

Shapes follow what alpaca-py's ``StockHistoricalDataClient(url_override=...)`` requests and parses
(reference §1.2): latest trades/quotes/bars and snapshots for a ``symbols`` list, historical bars,
trades and quotes over ``start``/``end`` with ``limit``/``page_token`` paging, and errors as
``{"code", "message"}``. A client reconciles after a reconnect with these (``ALPACA_DATA_URL``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import orjson
from aiohttp import web

from alpaca_feed.history import History, Row, aggregate, rest_record
from alpaca_feed.market import MINUTE_NS, MarketModel
from schemas.symbols import SYMBOL_PATTERN
from schemas.timestamps import datetime_to_ns, format_ns_trimmed, now_ns, parse_ns
from tickwire.errors import TickwireError

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
REST_FEEDS = ("iex", "sip", "delayed_sip", "boats", "overnight", "otc")
HOUR_NS = 60 * MINUTE_NS
BAR_KEYS = ("o", "h", "l", "c", "v", "n", "vw")

# Alpaca-style error codes: HTTP status followed by a detail number.
_INVALID = 42210000
_UNAUTHORIZED = 40110000
_NOT_FOUND = 40410000


class RestError(TickwireError):
    """A request answered with ``{"code", "message"}`` and an HTTP error status."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


# --- query parsing ----------------------------------------------------------------------------


def _symbols(query: Any) -> list[str]:
    raw = query.get("symbols", "")
    symbols = [part.strip().upper() for part in raw.split(",") if part.strip()]
    if not symbols:
        raise RestError(400, 40010001, "symbols is required")
    bad = [symbol for symbol in symbols if SYMBOL_PATTERN.fullmatch(symbol) is None]
    if bad:
        raise RestError(400, 40010001, f"invalid symbol(s): {', '.join(bad)}")
    return sorted(dict.fromkeys(symbols))


def _feed(query: Any) -> None:
    feed = query.get("feed")
    if feed is not None and feed not in REST_FEEDS:
        raise RestError(422, _INVALID, f"invalid feed: {feed}")


def _time(query: Any, name: str, default: int) -> int:
    """RFC 3339 (any offset, up to ns) or a date (midnight UTC)."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return parse_ns(text)
    except ValueError:
        pass
    try:
        return datetime_to_ns(datetime.combine(date.fromisoformat(text), datetime.min.time()))
    except ValueError:
        raise RestError(422, _INVALID, f"invalid {name}: {text}") from None


def _limit(query: Any) -> int:
    text = query.get("limit")
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise RestError(422, _INVALID, f"invalid limit: {text}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise RestError(422, _INVALID, f"invalid limit: must be between 1 and {MAX_LIMIT}")
    return limit


def _sort(query: Any) -> bool:
    """True for descending."""
    sort = query.get("sort", "asc") or "asc"
    if sort not in ("asc", "desc"):
        raise RestError(422, _INVALID, f"invalid sort: {sort}")
    return sort == "desc"


def _timeframe(text: str | None) -> tuple[str, int]:
    """("minutes", bucket ns) for NMin/NHour (N minutes up to 59, hours up to 23), ("days", 0) for 1Day."""
    text = text or ""
    for unit, scale, most in (("Min", MINUTE_NS, 59), ("T", MINUTE_NS, 59), ("Hour", HOUR_NS, 23), ("H", HOUR_NS, 23)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            amount = int(text[: -len(unit)])
            if 1 <= amount <= most:
                return "minutes", amount * scale
    if text in ("1Day", "1D", "Day"):
        return "days", 0
    raise RestError(422, _INVALID, f"invalid or unsupported timeframe: {text!r} (use NMin, NHour or 1Day)")


def encode_page_token(symbol: str, t: int, skip: int) -> str:
    """Where the next page starts: ``symbol``'s items from time ``t``, after ``skip`` with that time."""
    return base64.urlsafe_b64encode(orjson.dumps([symbol, t, skip])).decode()


def decode_page_token(token: str) -> tuple[str, int, int]:
    """Inverse of :func:`encode_page_token`; RestError(422) for anything else."""
    try:
        symbol, t, skip = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(symbol, str) and type(t) is int and type(skip) is int and skip >= 0:
            return symbol, t, skip
    except (ValueError, TypeError, binascii.Error):
        pass
    raise RestError(422, _INVALID, "invalid page_token")


def paginate(
    series: dict[str, list[Row]], limit: int, descending: bool, token: str | None
) -> tuple[dict[str, list[Row]], str | None]:
    """One page of ``series`` (symbol -> rows, oldest first) in symbol order, at most ``limit`` rows.

    Returns the page and the token of the next one (None on the last page).
    """
    start_symbol, start_t, skip = decode_page_token(token) if token else ("", 0, 0)
    page: dict[str, list[Row]] = {}
    taken = 0
    for symbol in sorted(series):
        if symbol < start_symbol:
            continue
        rows = series[symbol][::-1] if descending else series[symbol]
        first = 0
        if symbol == start_symbol and token:
            first = next(
                (i for i, row in enumerate(rows) if (row[0] <= start_t if descending else row[0] >= start_t)),
                len(rows),
            )
            first += skip
        for index in range(first, len(rows)):
            if taken == limit:
                t = rows[index][0]
                same = index
                while same > 0 and rows[same - 1][0] == t:  # equal times are adjacent
                    same -= 1
                return page, encode_page_token(symbol, t, index - same)
            page.setdefault(symbol, []).append(rows[index])
            taken += 1
    return page, None


# --- the API ----------------------------------------------------------------------------------


class MarketDataApi:
    """The REST handlers over ``history`` (and ``model`` for daily bars of the synthetic market).

    ``key``/``secret``: when set, requests must carry them in ``APCA-API-KEY-ID`` /
    ``APCA-API-SECRET-KEY`` (else 401); None accepts any.
    """

    def __init__(
        self,
        history: History,
        model: MarketModel,
        *,
        key: str | None = None,
        secret: str | None = None,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self._history = history
        self._model = model
        self._key = key
        self._secret = secret
        self._clock = clock

    def add_routes(self, app: web.Application) -> None:
        """Register ``/v2/stocks/...`` on ``app``."""
        app.router.add_get("/v2/stocks/trades/latest", self._wrap(self.latest_trades))
        app.router.add_get("/v2/stocks/quotes/latest", self._wrap(self.latest_quotes))
        app.router.add_get("/v2/stocks/bars/latest", self._wrap(self.latest_bars))
        app.router.add_get("/v2/stocks/snapshots", self._wrap(self.snapshots))
        app.router.add_get("/v2/stocks/bars", self._wrap(self.bars))
        app.router.add_get("/v2/stocks/trades", self._wrap(self.trades))
        app.router.add_get("/v2/stocks/quotes", self._wrap(self.quotes))
        app.router.add_route("*", "/v2/stocks/{tail:.*}", self._wrap(self._not_found))

    def _wrap(self, handler: Callable[[Any], dict[str, Any]]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            try:
                self._authorize(request)
                return _json(handler(request.query))
            except RestError as exc:
                return _json({"code": exc.code, "message": exc.message}, status=exc.status)

        return handle

    def _authorize(self, request: web.Request) -> None:
        if self._key is None and self._secret is None:
            return
        key = request.headers.get("APCA-API-KEY-ID", "")
        secret = request.headers.get("APCA-API-SECRET-KEY", "")
        key_ok = self._key is None or hmac.compare_digest(key, self._key)
        secret_ok = self._secret is None or hmac.compare_digest(secret, self._secret)
        if not (key_ok and secret_ok):
            raise RestError(401, _UNAUTHORIZED, "request is not authorized")

    @staticmethod
    def _not_found(query: Any) -> dict[str, Any]:
        raise RestError(404, _NOT_FOUND, "endpoint not found")

    # --- latest and snapshots -----------------------------------------------------------------

    def _latest(self, query: Any, kind: str, key: str) -> dict[str, Any]:
        symbols = _symbols(query)
        _feed(query)
        out: dict[str, Any] = {}
        for symbol in symbols:
            row = self._history.latest(kind, symbol)
            if row is not None:
                out[symbol] = rest_record(kind, row, format_ns_trimmed)
        return {key: out}

    def latest_trades(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/trades/latest``."""
        return self._latest(query, "trades", "trades")

    def latest_quotes(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/quotes/latest``."""
        return self._latest(query, "quotes", "quotes")

    def latest_bars(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/bars/latest``."""
        return self._latest(query, "bars", "bars")

    def snapshots(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/snapshots``: symbol -> snapshot, no wrapper key; unknown symbols left out."""
        symbols = _symbols(query)
        _feed(query)
        known = self._history.symbols()
        now = self._clock()
        today = self._model.hours.day_start(now)
        out: dict[str, Any] = {}
        for symbol in symbols:
            if symbol not in known and not self._model.knows(symbol):
                continue
            latest = {kind: self._history.latest(kind, symbol) for kind in ("trades", "quotes", "bars")}
            out[symbol] = {
                "latestTrade": self._record("trades", latest["trades"]),
                "latestQuote": self._record("quotes", latest["quotes"]),
                "minuteBar": self._record("bars", latest["bars"]),
                "dailyBar": self._daily_bar(symbol, today),
                "prevDailyBar": self._previous_daily_bar(symbol, today, now),
            }
        return out

    @staticmethod
    def _record(kind: str, row: Row | None) -> dict[str, Any] | None:
        return None if row is None else rest_record(kind, row, format_ns_trimmed)

    def _daily_bar(self, symbol: str, today: int) -> dict[str, Any] | None:
        row = self._history.latest("daily", symbol)
        if row is not None and row[0] >= today:
            return rest_record("daily", row, format_ns_trimmed)
        bar = self._model.daily_bar(symbol)  # today so far, also before the open
        if bar is not None and bar["t"] >= today:
            return _bar_record(bar)
        return None

    def _previous_daily_bar(self, symbol: str, today: int, now: int) -> dict[str, Any] | None:
        row = self._history.daily_before(symbol, today)
        if row is not None:
            return rest_record("daily", row, format_ns_trimmed)
        return _bar_record(self._model.previous_daily_bar(symbol, now))

    # --- historical ---------------------------------------------------------------------------

    def _range(self, query: Any) -> tuple[list[str], int, int, int, bool]:
        symbols = _symbols(query)
        _feed(query)
        now = self._clock()
        start = _time(query, "start", self._model.hours.day_start(now))
        end = _time(query, "end", now)
        if end < start:
            raise RestError(422, _INVALID, "end should not be before start")
        return symbols, start, end, _limit(query), _sort(query)

    def _historical(self, query: Any, kind: str, key: str) -> dict[str, Any]:
        symbols, start, end, limit, descending = self._range(query)
        series = {symbol: self._history.between(kind, symbol, start, end) for symbol in symbols}
        return self._page(key, kind, series, limit, descending, query.get("page_token"))

    def _page(
        self, key: str, kind: str, series: dict[str, list[Row]], limit: int, descending: bool, token: str | None
    ) -> dict[str, Any]:
        page, next_token = paginate({s: rows for s, rows in series.items() if rows}, limit, descending, token or None)
        records = {s: [rest_record(kind, row, format_ns_trimmed) for row in rows] for s, rows in page.items()}
        return {key: records, "next_page_token": next_token}

    def trades(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/trades``."""
        return self._historical(query, "trades", "trades")

    def quotes(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/quotes``."""
        return self._historical(query, "quotes", "quotes")

    def bars(self, query: Any) -> dict[str, Any]:
        """``GET /v2/stocks/bars`` for ``timeframe`` NMin, NHour (from minute bars) or 1Day."""
        unit, bucket = _timeframe(query.get("timeframe"))
        symbols, start, end, limit, descending = self._range(query)
        series: dict[str, list[Row]] = {}
        for symbol in symbols:
            if unit == "days":
                series[symbol] = self._daily_rows(symbol, start, end)
            else:
                minutes = self._history.between("bars", symbol, start, end)
                series[symbol] = minutes if bucket == MINUTE_NS else aggregate(minutes, bucket)
        return self._page("bars", "bars", series, limit, descending, query.get("page_token"))

    def _daily_rows(self, symbol: str, start: int, end: int) -> list[Row]:
        rows = {row[0]: row for row in self._history.between("daily", symbol, start, end)}
        if self._model.knows(symbol):
            for bar in (self._model.previous_daily_bar(symbol, self._clock()), self._model.daily_bar(symbol)):
                if bar is not None and start <= bar["t"] <= end:
                    rows.setdefault(bar["t"], (bar["t"], *(bar[key] for key in BAR_KEYS)))
        return [rows[t] for t in sorted(rows)]


def _bar_record(bar: dict[str, Any]) -> dict[str, Any]:
    return {"t": format_ns_trimmed(bar["t"]), **{key: bar[key] for key in BAR_KEYS}}

