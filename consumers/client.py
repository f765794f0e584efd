"""TickwireClient: the Python consumer library for tickwire's outputs in Redis.

    async with TickwireClient("redis://localhost:6379/0") as client:
        price = await client.latest_price("AAPL")           # PriceSnapshot | None
        async for update in client.stream_quotes(["AAPL", "MSFT"], callback=print):
            ...                                               # PriceUpdated as they happen, or a Gap

Streams read the capped Redis streams ``price.stream.{SYMBOL}`` / ``pnl.stream.{account}`` (not pub/sub): each
starts after the streams' newest entries when it starts, and hands out every change after that exactly once
and in order. After a lost Redis connection it reconnects with capped exponential backoff and goes on after
the last entry it saw, so a reconnect misses nothing, as long as the reader is not further behind than the
cap (TICKWIRE_REDIS_STREAM_MAXLEN entries per stream). If it is, the stream yields one :class:`Gap` for that
stream (updates were lost: read ``latest_price`` again if that matters) and goes on from the oldest entry left.
Several streams can run concurrently. A callback (plain or async) runs before its item is yielded; if it raises,
the error is logged and the stream goes on. Close a stream you leave early (``contextlib.aclosing``).
Needs Redis 6.2 or later (exclusive stream ranges); Redis 7 reports gaps exactly (6.2 may report one more).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from consumers.api.broker import BrokerGateway, OutgoingRecord
from consumers.stream_reader import StreamEntry, StreamGap, StreamReader, format_id, last_ids
from domain.positions import normalize_account, parse_decimal
from schemas.events import PnLUpdated, Position, PriceSnapshot, PriceUpdated
from schemas.symbols import normalize_symbol
from schemas.timestamps import format_ns, now_ns
from schemas.topics import DEFAULT_ACCOUNT, POSITIONS, pnl_stream, position_key, price_key, price_stream
from tickwire.runtime.redis_script import retry_while_redis_down

log = structlog.get_logger(__name__)

E = TypeVar("E")
M = TypeVar("M", bound=BaseModel)
Callback = Callable[[E], Any] | Callable[[E], Awaitable[Any]]
BLOCK_S = 1.0  # a stream's blocking read waits at most this long before reading again


@dataclass(frozen=True)
class Gap:
    """Updates of one stream were missed: the stream was trimmed past its cap before this reader got them.

    ``symbol`` (a price stream) or ``account`` (a P&L stream) says which; ``last_seen_id`` is the last entry
    the reader got, ``resumed_at_id`` the entry it goes on from (the oldest left). Yielded once per gap.
    """

    symbol: str | None
    account: str | None
    last_seen_id: str
    resumed_at_id: str


class TickwireClient:
    """Latest prices and live price / P&L streams from tickwire's Redis. Use as an async context manager."""

    def __init__(self, redis_url: str | None = None, *, redis: Redis | None = None) -> None:
        if (redis_url is None) == (redis is None):
            raise ValueError("give either redis_url or redis")
        self._owns_redis = redis is None
        self.redis: Redis = redis if redis is not None else Redis.from_url(redis_url)  # type: ignore[arg-type]

    async def __aenter__(self) -> TickwireClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis connections this client opened."""
        if self._owns_redis:
            await self.redis.aclose()

    async def latest_price(self, symbol: str) -> PriceSnapshot | None:
        """The symbol's latest validated price, or None when there is none (never seen, or expired)."""
        raw = await self.redis.get(price_key(normalize_symbol(symbol)))
        return PriceSnapshot.model_validate_json(raw) if raw is not None else None

    async def latest_prices(self, symbols: Iterable[str]) -> dict[str, PriceSnapshot]:
        """Latest prices of several symbols in one round trip (symbols without a price are left out)."""
        names = [normalize_symbol(s) for s in symbols]
        if not names:
            return {}
        raws = await self.redis.mget([price_key(s) for s in names])
        return {s: PriceSnapshot.model_validate_json(r) for s, r in zip(names, raws, strict=True) if r is not None}

    def stream_quotes(self, symbols: Iterable[str] | str,
                      callback: Callback[PriceUpdated | Gap] | None = None) -> AsyncIterator[PriceUpdated | Gap]:
        """Every change of the symbols' latest price from now on, exactly once and in order (from
        ``price.stream.{SYMBOL}``), across reconnects; a :class:`Gap` where the cap lost some."""
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        streams = {price_stream(s): s for s in dict.fromkeys(normalize_symbol(n) for n in names)}
        if not streams:
            raise ValueError("stream_quotes needs at least one symbol")
        return self._stream(streams, PriceUpdated, callback, lambda stream, gap: Gap(
            streams[stream], None, format_id(gap.last_seen), format_id(gap.resumed_at)))

    def stream_pnl(self, account: str = DEFAULT_ACCOUNT,
                   callback: Callback[PnLUpdated | Gap] | None = None) -> AsyncIterator[PnLUpdated | Gap]:
        """Every revaluation of the account's positions from now on, exactly once and in order (from
        ``pnl.stream.{account}``), across reconnects; a :class:`Gap` where the cap lost some."""
        return self._stream({pnl_stream(account): account}, PnLUpdated, callback, lambda stream, gap: Gap(
            None, account, format_id(gap.last_seen), format_id(gap.resumed_at)))

    async def _stream(self, streams: dict[str, str], model: type[M], callback: Callback[M | Gap] | None,
                      gap_of: Callable[[str, StreamGap], Gap]) -> AsyncIterator[M | Gap]:
        what = f"stream of {', '.join(streams.values())}"
        # Where the streams end now is where this reader starts; every read after that goes on from its cursors,
        # on whatever connection the pool gives (a killed one is replaced), retried with backoff while Redis is away.
        start = await retry_while_redis_down(lambda: last_ids(self.redis, streams), what)
        reader = StreamReader(self.redis, start)
        while True:
            for item in await retry_while_redis_down(lambda: reader.read(BLOCK_S), what):
                event: M | Gap | None = (gap_of(item.stream, item) if isinstance(item, StreamGap)
                                         else _parse(model, item))
                if event is None:
                    continue
                if callback is not None:
                    await _call_isolated(callback, event)
                yield event


def position_record(symbol: str, qty: object, avg_entry_price: object, account: str = DEFAULT_ACCOUNT) -> Position:
    """A validated ``Position`` (ValueError saying what is wrong otherwise); qty 0 closes, negative is short."""
    avg = parse_decimal(avg_entry_price, "avg_entry_price")
    if avg < 0:
        raise ValueError(f"avg_entry_price must not be negative, got {avg}")
    return Position(account=normalize_account(account), symbol=normalize_symbol(symbol),
                    qty=parse_decimal(qty, "qty"), avg_entry_price=avg, updated_at=format_ns(now_ns()))


async def publish_position(bootstrap: str, position: Position, client_options: dict[str, Any] | None = None) -> None:
    """Publish ``position`` to the ``positions`` topic (raises ServiceUnavailable when the broker is down)."""
    broker = BrokerGateway(bootstrap, processor_group="", client_options=client_options)
    try:
        await broker.publish([OutgoingRecord(POSITIONS.name, position_key(position.account, position.symbol),
                                             position.to_json())])
    finally:
        await broker.close()


async def _call_isolated(callback: Callback[E], event: E) -> None:
    # One failing callback must not end the stream, nor affect other streams.
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("stream callback failed; the stream goes on", callback=getattr(callback, "__name__", "?"),
                      event_type=type(event).__name__)


def _parse(model: type[M], entry: StreamEntry) -> M | None:
    try:
        return model.model_validate_json(entry.data)
    except ValidationError as exc:
        log.warning("skipping unreadable stream entry", stream=entry.stream, id=format_id(entry.id),
                    error=str(exc).splitlines()[0])
        return None


__all__ = [
    "BLOCK_S",
    "Callback",
    "Gap",
    "TickwireClient",
    "position_record",
    "publish_position",
]
