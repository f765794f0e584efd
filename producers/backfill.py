"""GapReconciler: announces each gap on ``feed.gaps`` and repairs it from the feed's REST history.

The history (the feed source's, e.g. alpaca-py's ``StockHistoricalDataClient`` for stocks) is blocking
and runs in a worker thread, so the event loop never waits on it. Repairs are published straight to the
raw topics, outside the live queue, marked ``"source": "backfill"`` with the ``gap_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgpack
import structlog

from producers.feed_source import FeedHistory
from producers.gaps import GapIncident, exchange_ns
from producers.kafka_publisher import RawEventPublisher
from producers.raw_events import KafkaRecord, encode_raw_event
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import FEED_GAPS

log = structlog.get_logger(__name__)
T = TypeVar("T")

BACKFILL_SOURCE = "backfill"


class GapReconciler:
    """Publishes a finished :class:`GapIncident` and re-publishes what the history has for its window.

    Per symbol the window runs from the last message before the gap to the first after; it is cut to
    ``max_window_s`` (the most recent part) so one long outage cannot flood the topics. What the history
    returns goes to the raw topic ``topics`` names for its letter.
    """

    def __init__(
        self,
        publisher: RawEventPublisher,
        history: FeedHistory | None,
        topics: Mapping[str, str],
        max_window_s: float,
        symbols_per_request: int = 5,
    ) -> None:
        self.publisher = publisher
        self.history = history
        self.topics = topics
        self.max_window_ns = int(max_window_s * NS_PER_SECOND)
        self.symbols_per_request = symbols_per_request
        self.gaps = 0
        self.backfilled = 0
        self.failures = 0

    async def reconcile(self, incident: GapIncident) -> None:
        """Announce the gap, then backfill it (failures are logged and counted, never raised)."""
        events = incident.events()
        await self.publisher.send_records([KafkaRecord(FEED_GAPS.name, e.symbol.encode(), e.to_json())
                                           for e in events])
        self.gaps += len(events)
        started = now_ns()
        log.warning("feed gap", gap_id=incident.gap_id, reason=incident.reason.value, symbols=incident.symbols,
                    seconds=round((started - incident.started_ns) / NS_PER_SECOND, 3))
        if self.history is None:
            return
        repaired = 0
        # A few symbols per request, each published before the next is read: a long gap at a busy hour holds
        # one chunk's messages at a time, not the whole gap's (the ingest's memory stays flat).
        symbols, size = incident.symbols, self.symbols_per_request
        for chunk in (symbols[i:i + size] for i in range(0, len(symbols), size)):
            repaired += await self._repair(incident, {s: self._window(incident, s, started) for s in chunk})
        log.info("gap backfilled", gap_id=incident.gap_id, messages=repaired,
                 seconds=round((now_ns() - started) / NS_PER_SECOND, 3))

    async def _repair(self, incident: GapIncident, windows: dict[str, tuple[int, int]]) -> int:
        """Read ``windows`` from the history and publish what it has; a failure is logged and counted (the
        other symbols' repairs go on)."""
        assert self.history is not None
        try:
            messages = await in_daemon_thread(self.history.missed, windows)
        except Exception as exc:  # requests/alpaca errors of any kind: report, the stream goes on
            self.failures += 1
            log.error("backfill failed; the gap stays unrepaired for these symbols", gap_id=incident.gap_id,
                      symbols=list(windows), error=f"{type(exc).__name__}: {exc}")
            return 0
        received = now_ns()
        marker = {"source": BACKFILL_SOURCE, "gap_id": incident.gap_id}
        messages.sort(key=lambda m: m["t"].to_unix_nano())
        records = [r for r in (encode_raw_event({**m, **marker}, received, topics=self.topics) for m in messages)
                   if r is not None]
        del messages
        await self.publisher.send_records(records)
        self.backfilled += len(records)
        return len(records)

    def _window(self, incident: GapIncident, symbol: str, now: int) -> tuple[int, int]:
        lo, hi = incident.window_ns(symbol, now)
        return max(lo, hi - self.max_window_ns), hi


def as_streamed(kind: str, symbol: str, item: dict[str, Any]) -> dict[str, Any]:
    """A REST item in the stream's shape: ``T`` and ``S`` first, ``t`` as a msgpack Timestamp (ns kept)."""
    message: dict[str, Any] = {"T": kind, "S": symbol}
    message.update(item)
    message["t"] = msgpack.Timestamp.from_unix_nano(exchange_ns(item.get("t")) or 0)
    return message


async def in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in a daemon thread: unlike the default executor, process exit never waits for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = function(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="alpaca-rest", daemon=True).start()
    return await future
