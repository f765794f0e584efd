"""GapReconciler: announces each gap on ``feed.gaps`` and repairs it from Alpaca's REST API.

REST calls go through alpaca-py's ``StockHistoricalDataClient`` (blocking ``requests``) in a worker
thread, so the event loop never waits on them. Repairs are published straight to the raw topics,
outside the live queue, marked ``"source": "backfill"`` with the ``gap_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgpack
import structlog
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockTradesRequest
from alpaca.data.timeframe import TimeFrame

from producers.alpaca_adapter import with_request_timeout
from producers.gaps import GapIncident, exchange_ns
from producers.kafka_publisher import RawEventPublisher
from producers.raw_events import KafkaRecord, encode_raw_event
from schemas.timestamps import NS_PER_SECOND, now_ns, ns_to_datetime
from schemas.topics import FEED_GAPS

log = structlog.get_logger(__name__)
T = TypeVar("T")

MINUTE_NS = 60 * NS_PER_SECOND
BACKFILL_SOURCE = "backfill"
REST_FEEDS = {"iex": DataFeed.IEX, "sip": DataFeed.SIP, "delayed_sip": DataFeed.DELAYED_SIP}


def make_rest_client(api_key: str, secret_key: str, url: str | None) -> StockHistoricalDataClient:
    """alpaca-py's REST client in raw mode (timestamps stay nanosecond strings), with request timeouts."""
    return with_request_timeout(StockHistoricalDataClient(api_key, secret_key, raw_data=True, url_override=url))


class GapReconciler:
    """Publishes a finished :class:`GapIncident` and re-publishes what REST has for its window.

    Per symbol: the trades strictly inside the window, the minute bars that closed inside it, and the
    latest quote if it is newer than the last message before the gap. The window is cut to
    ``max_window_s`` (the most recent part) so one long outage cannot flood the topics.
    """

    def __init__(
        self,
        publisher: RawEventPublisher,
        client: StockHistoricalDataClient | None,
        feed: str,
        max_window_s: float,
    ) -> None:
        self.publisher = publisher
        self.client = client
        self.feed = REST_FEEDS.get(feed)  # the test stream has no REST feed: let Alpaca pick
        self.max_window_ns = int(max_window_s * NS_PER_SECOND)
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
        if self.client is None:
            return
        try:
            messages = await in_daemon_thread(self._fetch, incident, started)
        except Exception as exc:  # requests/alpaca errors of any kind: report, the stream goes on
            self.failures += 1
            log.error("backfill failed; the gap stays unrepaired", gap_id=incident.gap_id,
                      error=f"{type(exc).__name__}: {exc}")
            return
        received = now_ns()
        records = [r for r in (encode_raw_event(m, received) for m in messages) if r is not None]
        await self.publisher.send_records(records)
        self.backfilled += len(records)
        log.info("gap backfilled", gap_id=incident.gap_id, messages=len(records),
                 seconds=round((now_ns() - started) / NS_PER_SECOND, 3))

    def _fetch(self, incident: GapIncident, now: int) -> list[dict[str, Any]]:
        assert self.client is not None
        symbols = incident.symbols
        windows = {s: self._window(incident, s, now) for s in symbols}
        start = min(lo for lo, _ in windows.values())
        end = max(hi for _, hi in windows.values())
        marker = {"source": BACKFILL_SOURCE, "gap_id": incident.gap_id}
        out: list[dict[str, Any]] = []
        trades = self.client.get_stock_trades(StockTradesRequest(
            symbol_or_symbols=symbols, start=_dt(start), end=_dt(end) + timedelta(microseconds=1), feed=self.feed))
        for symbol, items in _by_symbol(trades):
            lo, hi = windows[symbol]
            out += [_message("t", symbol, item, marker) for item in items if lo < (_ns(item) or lo) < hi]
        bars = self.client.get_stock_bars(StockBarsRequest(
            symbol_or_symbols=symbols, timeframe=TimeFrame.Minute, start=_dt(start - MINUTE_NS), end=_dt(end),
            feed=self.feed))
        for symbol, items in _by_symbol(bars):
            lo, hi = windows[symbol]
            # A minute bar is streamed when its minute ends: missed if that moment fell inside the gap.
            out += [_message("b", symbol, item, marker) for item in items
                    if lo < (_ns(item) or hi) + MINUTE_NS <= hi]
        quotes = self.client.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=symbols,
                                                                            feed=self.feed))
        for symbol, item in (quotes or {}).items():
            if symbol in windows and isinstance(item, dict) and (_ns(item) or 0) > windows[symbol][0]:
                out.append(_message("q", symbol, item, marker))
        out.sort(key=lambda m: m["t"].to_unix_nano())
        return out

    def _window(self, incident: GapIncident, symbol: str, now: int) -> tuple[int, int]:
        lo, hi = incident.window_ns(symbol, now)
        return max(lo, hi - self.max_window_ns), hi


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


def _dt(ns: int) -> datetime:
    return ns_to_datetime(ns)


def _ns(item: dict[str, Any]) -> int | None:
    return exchange_ns(item.get("t"))


def _by_symbol(result: Any) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    if not isinstance(result, dict):
        return []
    return [(s, items) for s, items in result.items() if isinstance(items, list)]


def _message(kind: str, symbol: str, item: dict[str, Any], marker: dict[str, str]) -> dict[str, Any]:
    """A REST item in the stream's shape: ``T`` and ``S`` first, ``t`` as a msgpack Timestamp (ns kept)."""
    message: dict[str, Any] = {"T": kind, "S": symbol}
    message.update(item)
    message["t"] = msgpack.Timestamp.from_unix_nano(exchange_ns(item.get("t")) or 0)
    message.update(marker)
    return message
