"""TickwireClient: the Python consumer library for tickwire's outputs in Redis.

    async with TickwireClient("redis://localhost:6379/0") as client:
        price = await client.latest_price("AAPL")           # PriceSnapshot | None
        async for update in client.stream_quotes(["AAPL", "MSFT"], callback=print):
            ...                                               # PriceUpdated, as they happen

Each stream has its own Redis subscription, so several can run concurrently. A callback (plain or
async) runs before its event is yielded; if it raises, the error is logged and the stream goes on.
Streams resubscribe after a lost Redis connection; what was published meanwhile is missed (Redis
pub/sub keeps nothing), so read ``latest_price`` again after a reconnect warning if that matters.
Close a stream you leave early (``contextlib.aclosing``) to release its connection at once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.api.broker import BrokerGateway, OutgoingRecord
from domain.positions import normalize_account, parse_decimal
from schemas.events import PnLUpdated, Position, PriceSnapshot, PriceUpdated
from schemas.symbols import normalize_symbol
from schemas.timestamps import format_ns, now_ns
from schemas.topics import DEFAULT_ACCOUNT, POSITIONS, pnl_channel, position_key, price_channel, price_key

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=BaseModel)
Callback = Callable[[E], Any] | Callable[[E], Awaitable[Any]]
RECONNECT_DELAY_S = 1.0


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
                      callback: Callback[PriceUpdated] | None = None) -> AsyncIterator[PriceUpdated]:
        """Every change of the symbols' latest price, as it happens (from ``price.updated.{SYMBOL}``)."""
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        channels = [price_channel(normalize_symbol(s)) for s in names]
        if not channels:
            raise ValueError("stream_quotes needs at least one symbol")
        return self._stream(channels, PriceUpdated, callback)

    def stream_pnl(self, account: str = DEFAULT_ACCOUNT,
                   callback: Callback[PnLUpdated] | None = None) -> AsyncIterator[PnLUpdated]:
        """Every revaluation of the account's positions (from ``pnl.updated.{account}``)."""
        return self._stream([pnl_channel(account)], PnLUpdated, callback)

    async def _stream(self, channels: list[str], model: type[E], callback: Callback[E] | None) -> AsyncIterator[E]:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                async for message in pubsub.listen():
                    event = _parse(model, message)
                    if event is None:
                        continue
                    if callback is not None:
                        await _call_isolated(callback, event)
                    yield event
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("redis connection lost, resubscribing", channels=channels, error=str(exc))
                await asyncio.sleep(RECONNECT_DELAY_S)  # backoff before reconnecting
            finally:
                await pubsub.aclose()


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


def _parse(model: type[E], message: dict[str, Any]) -> E | None:
    if message.get("type") not in ("message", "pmessage"):
        return None
    try:
        return model.model_validate_json(message["data"])
    except ValidationError as exc:
        log.warning("skipping unreadable message", channel=message.get("channel"), error=str(exc).splitlines()[0])
        return None


__all__ = [
    "RECONNECT_DELAY_S",
    "Callback",
    "TickwireClient",
    "position_record",
    "publish_position",
]
