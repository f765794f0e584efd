"""Recent prices of one symbol, read back from the ``prices`` topic (so a chart starts filled, not empty).

The topic is keyed by symbol with aiokafka's default partitioner, so only the symbol's partition is read,
from the broker's offset for the window's start. The embedded broker's end offsets are unreliable, so the
read ends when a fetch comes back empty (caught up) or at a deadline, never at a "last offset".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from consumers.api.errors import one_line
from schemas.topics import PRICES

log = structlog.get_logger(__name__)

MAX_RECORDS_SCANNED = 50_000  # bounds the work of one request on a busy partition
FETCH_TIMEOUT_MS = 300  # an empty fetch this long means the read caught up
FIRST_FETCH_TIMEOUT_MS = 1500  # the first fetch also connects to the partition's leader


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
        if not self.bootstrap:
            return PriceHistory([], "no history: KAFKA_BOOTSTRAP_SERVERS is not set")
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    request_timeout_ms=int(self.timeout_s * 1000), **self.client_options)
        try:
            async with asyncio.timeout(self.timeout_s):
                await consumer.start()
                return PriceHistory(await self._read(consumer, symbol, seconds))
        except (KafkaError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else one_line(exc)
            log.warning("price history unavailable", symbol=symbol, error=reason)
            return PriceHistory([], f"no history: broker unavailable ({reason})")
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, symbol: str, seconds: int) -> list[HistoryPoint]:
        await consumer.topics()  # loads the cluster metadata, so the topic's partitions are known
        partitions = sorted(consumer.partitions_for_topic(PRICES.name) or ())
        if not partitions:
            return []
        key = symbol.encode()
        tp = TopicPartition(PRICES.name, self._partitioner(key, partitions, partitions))
        consumer.assign([tp])
        since_ms = int((time.time() - seconds) * 1000)
        found = (await consumer.offsets_for_times({tp: since_ms}))[tp]
        if found is None:  # nothing written since the window opened
            return []
        consumer.seek(tp, found.offset)
        by_second: dict[int, HistoryPoint] = {}
        scanned = 0
        scan_until = time.monotonic() + self.timeout_s / 2  # keep what was read rather than time out with nothing
        while scanned < MAX_RECORDS_SCANNED and time.monotonic() < scan_until:
            wait_ms = FETCH_TIMEOUT_MS if scanned else FIRST_FETCH_TIMEOUT_MS
            batch = (await consumer.getmany(tp, timeout_ms=wait_ms, max_records=5000)).get(tp, [])
            if not batch:
                break
            scanned += len(batch)
            for record in batch:
                if record.key != key or record.value is None or record.timestamp < since_ms:
                    continue  # another symbol of the partition, or before the window (offsets are approximate)
                value = orjson.loads(record.value)
                by_second[record.timestamp // 1000] = HistoryPoint(str(value["timestamp"]), str(value["mid"]))
        return [by_second[second] for second in sorted(by_second)]
