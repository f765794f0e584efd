"""Snapshot-then-updates: the current prices and P&L, then every change, with no gap and no duplicate.

Order of work: subscribe (and wait until Redis confirms), read a snapshot in one transaction, then pass
on the updates, dropping those the snapshot already contains (older than or equal to its timestamps).
Anything published after the subscription is buffered by Redis on our connection, so nothing is missed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from schemas.events import AccountPnL, PnLUpdated, PositionPnL, PriceSnapshot, PriceUpdated
from schemas.timestamps import format_ns, now_ns
from schemas.topics import (
    PRICE_CHANNEL_PATTERN,
    pnl_channel,
    pnl_key,
    pnl_total_key,
    price_channel,
    price_key,
    symbol_from_price_channel,
)

log = structlog.get_logger(__name__)

EventKind = Literal["snapshot", "price", "pnl", "idle"]
M = TypeVar("M", bound=BaseModel)
SUBSCRIBE_TIMEOUT_S = 5.0
STOP_POLL_S = 0.25


@dataclass(frozen=True)
class LiveEvent:
    """One event of the stream: its kind and its JSON payload."""

    kind: EventKind
    data: bytes


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


class SnapshotFilter:
    """Decides which updates the snapshot already contains.

    An update is dropped when it is older than the snapshot's value of the same symbol, or has the same
    timestamp and the same figures. Once an update of a symbol passes, later ones of it are all newer.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self._prices = dict(snapshot.prices)
        self._pnl = dict(snapshot.pnl)
        # A position closed before the snapshot is absent from it; the account total was written with
        # the close, so its time bounds what the snapshot already reflects for absent symbols.
        self._total_at = snapshot.total.updated_at if snapshot.total else None

    def keep_price(self, update: PriceUpdated) -> bool:
        """True when ``update`` is news relative to the snapshot."""
        seen = self._prices.get(update.symbol)
        if seen is not None:
            if update.timestamp < seen.timestamp or (
                    update.timestamp == seen.timestamp and (update.bid, update.ask, update.price) == (
                        seen.bid, seen.ask, seen.mid)):
                return False
            del self._prices[update.symbol]
        return True

    def keep_pnl(self, update: PnLUpdated) -> bool:
        """True when ``update`` is news relative to the snapshot."""
        seen = self._pnl.get(update.symbol)
        if seen is not None:
            if update.timestamp < seen.updated_at or (
                    update.timestamp == seen.updated_at and (update.qty, update.mark_price, update.unrealized_pnl)
                    == (seen.qty, seen.mark_price, seen.unrealized_pnl)):
                return False
            del self._pnl[update.symbol]
            return True
        return self._total_at is None or update.timestamp > self._total_at


class LiveStream:
    """The stream of one client: ``account``'s P&L and the prices of ``symbols`` (None: every symbol).

    ``open()`` subscribes and reads the snapshot (so a Redis outage fails the request, not the stream);
    ``events()`` then yields the snapshot and the updates, and an ``idle`` event when nothing happened
    for ``idle_s`` (for keep-alives), until ``stopping()`` is true. Closes its subscription at the end.
    """

    def __init__(self, reads: Redis, pubsub_redis: Redis, account: str, symbols: list[str] | None,
                 idle_s: float = 15.0, stopping: Callable[[], bool] = lambda: False) -> None:
        self.reads = reads
        self.pubsub_redis = pubsub_redis
        self.account = account
        self.symbols = symbols
        self.idle_s = idle_s
        self.stopping = stopping
        self._pubsub: PubSub | None = None
        self._early: list[dict[str, Any]] = []
        self._snapshot: Snapshot | None = None

    async def open(self) -> Snapshot:
        """Subscribe, wait for Redis to confirm, then read the snapshot."""
        self._pubsub = self.pubsub_redis.pubsub()
        try:
            self._early = await self._subscribe(self._pubsub)
            self._snapshot = await self.read_snapshot()
        except BaseException:
            await self.aclose()
            raise
        return self._snapshot

    async def aclose(self) -> None:
        """Drop the subscription."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await pubsub.aclose()

    async def events(self) -> AsyncIterator[LiveEvent]:
        """Snapshot first, then updates, until the client goes away or Redis does."""
        if self._pubsub is None or self._snapshot is None:
            await self.open()
        assert self._pubsub is not None and self._snapshot is not None
        try:
            keep = SnapshotFilter(self._snapshot)
            yield LiveEvent("snapshot", self._snapshot.to_json())
            for message in self._early:
                event = self._decode(message, keep)
                if event is not None:
                    yield event
            idle_since = time.monotonic()
            # Polled, so a shutting-down server sees the stream end (and its connection close) within a poll.
            while not self.stopping():
                message = await self._pubsub.get_message(timeout=STOP_POLL_S)
                if message is None:
                    if time.monotonic() - idle_since >= self.idle_s:
                        idle_since = time.monotonic()
                        yield LiveEvent("idle", b"")
                    continue
                event = self._decode(message, keep)
                if event is not None:
                    idle_since = time.monotonic()
                    yield event
        finally:
            await self.aclose()

    async def read_snapshot(self) -> Snapshot:
        """Prices, positions' P&L and the account total, read in one transaction."""
        symbols = self.symbols
        if symbols is None:
            prefix_len = len(price_key(""))
            symbols = sorted({k.decode()[prefix_len:] async for k in self.reads.scan_iter(
                match=price_key("*"), count=1000)})
        pipe = self.reads.pipeline(transaction=True)
        pipe.hgetall(pnl_key(self.account))
        pipe.get(pnl_total_key(self.account))
        if symbols:
            pipe.mget([price_key(s) for s in symbols])
        raw_pnl, raw_total, *raw_prices = await pipe.execute()
        prices = {p.symbol: p for p in (_parse(PriceSnapshot, r) for r in (raw_prices[0] if raw_prices else []))
                  if p is not None}
        pnl = {p.symbol: p for p in (_parse(PositionPnL, r) for r in raw_pnl.values()) if p is not None}
        return Snapshot(self.account, prices, pnl, _parse(AccountPnL, raw_total))

    async def _subscribe(self, pubsub: PubSub) -> list[dict[str, Any]]:
        """Subscribe and wait for Redis to confirm; returns updates that arrived meanwhile."""
        expected = 1
        await pubsub.subscribe(pnl_channel(self.account))
        if self.symbols is None:
            await pubsub.psubscribe(PRICE_CHANNEL_PATTERN)
            expected += 1
        elif self.symbols:
            await pubsub.subscribe(*(price_channel(s) for s in self.symbols))
            expected += len(self.symbols)
        early: list[dict[str, Any]] = []
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
        while expected:
            message = await pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("redis did not confirm the subscriptions")
                continue
            if message["type"] in ("subscribe", "psubscribe"):
                expected -= 1
            else:
                early.append(message)
        return early

    def _decode(self, message: dict[str, Any], keep: SnapshotFilter) -> LiveEvent | None:
        if message["type"] not in ("message", "pmessage"):
            return None
        channel = message["channel"].decode()
        data = message["data"]
        if channel == pnl_channel(self.account):
            pnl = _parse(PnLUpdated, data)
            return LiveEvent("pnl", data) if pnl is not None and keep.keep_pnl(pnl) else None
        price = _parse(PriceUpdated, data)
        if price is None or price.symbol != symbol_from_price_channel(channel):
            return None
        return LiveEvent("price", data) if keep.keep_price(price) else None


def _parse(model: type[M], raw: bytes | None) -> M | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("skipping unreadable value", model=model.__name__, error=str(exc).splitlines()[0])
        return None
