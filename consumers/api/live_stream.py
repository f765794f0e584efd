"""Snapshot-then-changes, resumable: the current prices and P&L, then every change exactly once, in order.

A new reader: one Lua step reads the snapshot (prices, the account's P&L and total) and, with it, the newest
entry id of every stream it will follow (``price.stream.{SYMBOL}``, ``pnl.stream.{account}``), so the changes
start right after what the snapshot holds: nothing falls in between and nothing is repeated. A reader that
comes back with the position of the last event it got (SSE ``Last-Event-ID``, see
:class:`~consumers.stream_reader.Position`) gets no snapshot: the changes go on right after that position, or
a ``gap`` event first for each stream whose cap trimmed what it missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import orjson
import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.stream_reader import (
    Discovery,
    Position,
    StreamEntry,
    StreamGap,
    StreamId,
    StreamReader,
    format_id,
    parse_id,
)
from schemas.events import AccountPnL, PositionPnL, PriceSnapshot
from schemas.timestamps import format_ns, now_ns
from schemas.topics import PRICE_STREAMS_KEY, pnl_key, pnl_stream, pnl_total_key, price_key, price_stream

log = structlog.get_logger(__name__)

EventKind = Literal["snapshot", "price", "pnl", "gap", "idle"]
M = TypeVar("M", bound=BaseModel)
STOP_POLL_S = 0.25
SNAPSHOT_ATTEMPTS = 100  # see LiveStream._snapshot
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

# ARGV[1] the pnl hash, ARGV[2] the total, ARGV[3] the P&L stream, ARGV[4] / ARGV[5] the prefixes of price keys
# and price streams, ARGV[6] the set of symbols with a stream ('' = the symbols in ARGV[7..]). Returns the time
# (ms), the pnl hash, the total, the P&L stream's newest id, then per symbol: symbol, price (false: none), its
# stream's newest id ('0-0': none).
_SNAPSHOT_LUA = """
local function newest(stream)
  local entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #entries == 0 then return '0-0' end
  return entries[1][1]
end
local t = redis.call('TIME')
local symbols = {}
if ARGV[6] ~= '' then
  symbols = redis.call('SMEMBERS', ARGV[6])
else
  for i = 7, #ARGV do symbols[#symbols + 1] = ARGV[i] end
end
local prices = {}
for _, symbol in ipairs(symbols) do
  prices[#prices + 1] = symbol
  prices[#prices + 1] = redis.call('GET', ARGV[4] .. symbol)
  prices[#prices + 1] = newest(ARGV[5] .. symbol)
end
return {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), redis.call('HGETALL', ARGV[1]),
        redis.call('GET', ARGV[2]), newest(ARGV[3]), prices}
"""


@dataclass(frozen=True)
class LiveEvent:
    """One event of the stream: its kind, its JSON payload and, for a change, the position it brings the
    reader to (the SSE id a reconnecting browser sends back)."""

    kind: EventKind
    data: bytes
    id: str | None = None


@dataclass
class Snapshot:
    """Prices and P&L as they were at one instant."""

    account: str
    prices: dict[str, PriceSnapshot]
    pnl: dict[str, PositionPnL]
    total: AccountPnL | None

    def to_json(self) -> bytes:
        """The snapshot event's payload."""
        return orjson.dumps({
            "account": self.account,
            "prices": {s: p.model_dump(mode="json") for s, p in sorted(self.prices.items())},
            "pnl": {s: p.model_dump(mode="json") for s, p in sorted(self.pnl.items())},
            "total": self.total.model_dump(mode="json") if self.total else None,
            "taken_at": format_ns(now_ns()),
        })


class LiveStream:
    """The stream of one client: ``account``'s P&L and the prices of ``symbols`` (None: every symbol).

    ``resume_from`` is the id of the last event a client got (``Last-Event-ID``); without one, or with one
    that is not a position, the stream starts with a snapshot. ``open()`` reads the snapshot (so a Redis
    outage fails the request, not the stream); ``events()`` then yields it and the changes, and an ``idle``
    event when nothing happened for ``idle_s`` (for keep-alives), until ``stopping()`` is true or Redis
    goes away (the client then comes back with its last event id).
    """

    def __init__(self, reads: Redis, stream_redis: Redis, account: str, symbols: list[str] | None,
                 resume_from: str | None = None, idle_s: float = 15.0,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.reads = reads
        self.stream_redis = stream_redis
        self.account = account
        self.symbols = symbols
        self.resume_from = _position(resume_from)
        self.idle_s = idle_s
        self.stopping = stopping
        self._pnl_stream = pnl_stream(account)
        self._discovery = Discovery(PRICE_STREAMS_KEY, price_stream("")) if symbols is None else None
        self._reader: StreamReader | None = None
        self._snapshot: Snapshot | None = None

    async def open(self) -> Snapshot | None:
        """Read the snapshot and where each stream stands (or, resuming, only the latter); None when resuming."""
        if self.resume_from is not None:
            symbols = self.symbols if self.symbols is not None else await self._symbols_with_a_stream()
            streams = [self._pnl_stream, *(price_stream(s) for s in symbols)]
            self._reader = StreamReader(self.stream_redis, {s: self.resume_from.cursor(s) for s in streams},
                                        self._discovery, known=symbols)
            self._reader.position = self.resume_from
            return None
        self._snapshot, cursors, known = await self._take_snapshot()
        self._reader = StreamReader(self.stream_redis, cursors, self._discovery, known=known)
        return self._snapshot

    async def _symbols_with_a_stream(self) -> list[str]:
        members = await self.reads.smembers(PRICE_STREAMS_KEY)
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def aclose(self) -> None:
        """Forget the reader (it holds no connection between reads)."""
        self._reader = None

    async def events(self) -> AsyncIterator[LiveEvent]:
        """Snapshot first (unless resuming), then changes, until the client goes away, the server stops or
        Redis does."""
        if self._reader is None:
            await self.open()
        reader = self._reader
        assert reader is not None
        try:
            if self._snapshot is not None:
                yield LiveEvent("snapshot", self._snapshot.to_json())
            idle_since = time.monotonic()
            # Short blocking reads, so a shutting-down server sees the stream end within one of them.
            while not self.stopping():
                try:
                    items = await reader.read(STOP_POLL_S)
                except _REDIS_DOWN as exc:
                    log.warning("redis lost under a live stream; the client resumes from its last event id",
                                error=f"{type(exc).__name__}: {exc}")
                    return
                if not items:
                    if time.monotonic() - idle_since >= self.idle_s:
                        idle_since = time.monotonic()
                        yield LiveEvent("idle", b"")
                    continue
                idle_since = time.monotonic()
                for item in items:
                    yield self._event(item)
        finally:
            await self.aclose()

    async def _take_snapshot(self) -> tuple[Snapshot, dict[str, StreamId], list[str]]:
        """The snapshot, each stream's newest id with it, and the symbols with a stream (reading every symbol).

        Taken again (a millisecond later) while a stream's newest entry is of the snapshot's own millisecond:
        an entry another stream gets later in that millisecond would sort before a position the reader may
        reach, and a resume from there would hand out again what the snapshot holds.
        """
        script = self.reads.register_script(_SNAPSHOT_LUA)
        args = [pnl_key(self.account), pnl_total_key(self.account), self._pnl_stream, price_key(""),
                price_stream(""), PRICE_STREAMS_KEY if self.symbols is None else "", *(self.symbols or [])]
        for _ in range(SNAPSHOT_ATTEMPTS):
            now_ms, raw_pnl, raw_total, pnl_newest, raw_prices = await script(args=args)
            cursors = {self._pnl_stream: parse_id(pnl_newest)}
            prices: dict[str, PriceSnapshot] = {}
            symbols = []
            for i in range(0, len(raw_prices), 3):
                symbol = raw_prices[i].decode()
                symbols.append(symbol)
                cursors[price_stream(symbol)] = parse_id(raw_prices[i + 2])
                price = _parse(PriceSnapshot, raw_prices[i + 1])
                if price is not None:
                    prices[symbol] = price
            if all(cursor[0] < now_ms for cursor in cursors.values()):
                break
            await asyncio.sleep(0.001)  # the next millisecond
        pnl = {p.symbol: p for p in (_parse(PositionPnL, r) for r in raw_pnl[1::2]) if p is not None}
        return Snapshot(self.account, prices, pnl, _parse(AccountPnL, raw_total)), cursors, symbols

    def _event(self, item: StreamEntry | StreamGap) -> LiveEvent:
        if isinstance(item, StreamGap):
            symbol = item.stream.removeprefix(price_stream("")) if item.stream != self._pnl_stream else None
            return LiveEvent("gap", orjson.dumps({
                "stream": item.stream, "symbol": symbol, "account": None if symbol else self.account,
                "last_seen_id": format_id(item.last_seen), "resumed_at_id": format_id(item.resumed_at)}))
        kind: EventKind = "pnl" if item.stream == self._pnl_stream else "price"
        return LiveEvent(kind, item.data, item.position.token())


def _position(token: str | None) -> Position | None:
    if not token:
        return None
    try:
        return Position.parse(token)
    except ValueError:
        log.info("ignoring a last event id that is not a stream position; starting with a snapshot", id=token)
        return None


def _parse(model: type[M], raw: bytes | None) -> M | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("skipping unreadable value", model=model.__name__, error=str(exc).splitlines()[0])
        return None
