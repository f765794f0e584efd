"""Recent prices of one symbol, read back from the ``prices`` topic (so a chart starts filled, not empty),
and its previous session's close from ``bars.daily.raw``.

The topic is keyed by symbol with aiokafka's default partitioner, so only the symbol's partition is read,
from the broker's offset for the window's start to the partition's end offset when the request came (or at most
MAX_RECORDS_SCANNED records, or until half the request's time is spent: what was read is kept).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from consumers.api.errors import one_line
from schemas.timestamps import parse_ns
from schemas.topics import DAILY_BARS_RAW, PRICES
from tickwire.kafka import READ_ISOLATION, topic_partitions

log = structlog.get_logger(__name__)

NEW_YORK = "America/New_York"

CENT = Decimal("0.01")
MAX_RECORDS_SCANNED = 50_000  # bounds the work of one request on a busy partition
FETCH_TIMEOUT_MS = 500
CLOSE_LOOKBACK_S = 5 * 86400  # a long weekend back: where yesterday's last daily bar was published


def session_start_ns(at_ns: int) -> int:
    """Midnight New York time of the day holding ``at_ns``: how Alpaca stamps a session's daily bar."""
    zone = ZoneInfo(NEW_YORK)  # cached by zoneinfo after the first call
    day = datetime.fromtimestamp(at_ns / 1e9, zone).date()
    return int(datetime.combine(day, datetime.min.time(), zone).timestamp()) * 1_000_000_000


@dataclass(frozen=True)
class HistoryPoint:
    """One chart point: the last mid of a second, and the exchange time of its quote."""

    timestamp: str
    mid: str


@dataclass(frozen=True)
class PriceHistory:
    """Points oldest first, or none with the reason (broker down or not configured)."""

    points: list[HistoryPoint]
    detail: str = ""


class PriceHistoryReader:
    """Reads the last ``seconds`` of a symbol's prices, one point per second, from ``bootstrap``."""

    def __init__(self, bootstrap: list[str] | None, client_options: Mapping[str, Any] | None = None,
                 timeout_s: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.client_options = dict(client_options or {})
        self.timeout_s = timeout_s
        self._partitioner = DefaultPartitioner()

    async def recent(self, symbol: str, seconds: int) -> PriceHistory:
        """The symbol's mids over the last ``seconds`` (one per second, oldest first)."""
        by_second: dict[int, HistoryPoint] = {}

        def keep(timestamp_ms: int, value: dict[str, Any]) -> None:
            by_second[timestamp_ms // 1000] = HistoryPoint(str(value["timestamp"]), str(value["mid"]))

        detail = await self._scan(PRICES.name, symbol, int((time.time() - seconds) * 1000), keep)
        return PriceHistory([by_second[second] for second in sorted(by_second)], detail)

    async def previous_close(self, symbol: str, session_start_ns: int) -> Decimal | None:
        """The close of the symbol's last daily bar before ``session_start_ns`` on ``bars.daily.raw``.

        Needed because ``close:{SYMBOL}`` holds the latest daily bar, which during a session is today's.
        """
        best: tuple[int, Decimal] | None = None

        def keep(_: int, value: dict[str, Any]) -> None:
            nonlocal best
            try:
                bar_ns, close = parse_ns(value["t"]), Decimal(str(value["c"]))
            except (KeyError, ValueError, ArithmeticError):
                return  # not a daily bar we can read
            if bar_ns < session_start_ns and (best is None or bar_ns >= best[0]):
                best = (bar_ns, close)

        await self._scan(DAILY_BARS_RAW.name, symbol, int((time.time() - CLOSE_LOOKBACK_S) * 1000), keep)
        if best is None:
            return None
        close = best[1]  # a JSON number as Alpaca sends it: 95.0 is shown as a price, 95.00
        exponent = close.as_tuple().exponent
        return close.quantize(CENT) if isinstance(exponent, int) and exponent > -2 else close

    async def _scan(self, topic: str, symbol: str, since_ms: int,
                    keep: Callable[[int, dict[str, Any]], None]) -> str:
        """Pass (record time ms, JSON value) of ``symbol``'s records since ``since_ms`` to ``keep``; the reason
        when nothing could be read, else ""."""
        if not self.bootstrap:
            return "no history: KAFKA_BOOTSTRAP_SERVERS is not set"
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    request_timeout_ms=int(self.timeout_s * 1000), isolation_level=READ_ISOLATION,
                                    **self.client_options)
        try:
            async with asyncio.timeout(self.timeout_s):
                await consumer.start()
                await self._read(consumer, topic, symbol.encode(), since_ms, keep)
        except (KafkaError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else one_line(exc)
            log.warning("topic read failed", topic=topic, symbol=symbol, error=reason)
            return f"no history: broker unavailable ({reason})"
        finally:
            await consumer.stop()
        return ""

    async def _read(self, consumer: AIOKafkaConsumer, topic: str, key: bytes, since_ms: int,
                    keep: Callable[[int, dict[str, Any]], None]) -> None:
        partitions = await topic_partitions(consumer, topic)
        if not partitions:
            return
        tp = TopicPartition(topic, self._partitioner(key, partitions, partitions))
        consumer.assign([tp])
        found = (await consumer.offsets_for_times({tp: since_ms}))[tp]
        if found is None:  # nothing written since the window opened
            return
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, found.offset)
        scanned = 0
        scan_until = time.monotonic() + self.timeout_s / 2  # keep what was read rather than time out with nothing
        while scanned < MAX_RECORDS_SCANNED and time.monotonic() < scan_until and await consumer.position(tp) < end:
            batch = (await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=5000)).get(tp, [])
            scanned += len(batch)
            for record in batch:
                if record.key != key or record.value is None or record.timestamp < since_ms:
                    continue  # another symbol of the partition, or before the window (out-of-order record times)
                value = orjson.loads(record.value)
                if isinstance(value, dict):
                    keep(record.timestamp, value)
