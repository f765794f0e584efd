"""FetchGuard: notices "the broker says records are waiting but returns none" and widens the fetch wait until they come.

The embedded broker (Tansu) answers a fetch by listing the partition's stored batches from the start and
stops when the fetch's wait budget runs out: once a partition holds ~16-20k batches, a 10 ms wait never
reaches the fetch offset and every answer is empty while the high watermark keeps rising (a silent stall).
Redpanda and Kafka never do this. The guard watches each fetch: when owned partitions stay behind their high
watermark with nothing returned, it doubles the consumer's fetch wait (bounded), says so once per step, and
tries a narrower wait after a healthy minute, so latency stays low while partitions are small. A wait that had
to be widened again after narrowing becomes the floor: the embedded broker's partitions only ever grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = structlog.get_logger(__name__)

EMPTY_WAITS_BEFORE_WIDENING = 3  # fetch waits in a row with records waiting and none returned
MIN_EMPTY_S = 0.2  # and at least this long: a poll that returns early is not a failed fetch
HEALTHY_SECONDS_BEFORE_NARROWING = 60.0
ADVICE = "the embedded broker slows down as partitions grow; for long sessions run on Redpanda (docker-compose)"


class FetchGuard:
    """Call it with every ``getmany`` result; ``position(tp)`` gives the next offset the consumer will read."""

    def __init__(self, consumer: AIOKafkaConsumer, position: Callable[[TopicPartition], int | None], *,
                 base_wait_s: float, max_wait_s: float, name: str,
                 on_widen: Callable[[], None] = lambda: None) -> None:
        self.consumer = consumer
        self.position = position
        self.base_wait_s = base_wait_s
        self.max_wait_s = max_wait_s
        self.name = name
        self.on_widen = on_widen  # e.g. a Prometheus counter's inc
        self.wait_s = base_wait_s
        self.detail: str | None = None  # why the wait is wide, while it is (health reports it as degraded)
        self._empty_since: float | None = None  # when the broker last started answering nothing while behind
        self._healthy_since = time.monotonic()
        self._floor_s = base_wait_s  # narrowing stops here: a wait that proved necessary again after narrowing
        self._narrowed_from: float | None = None  # the wait last narrowed from, until it proves necessary again

    def __call__(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        now = time.monotonic()
        if any(batches.values()):
            self._empty_since = None
            if self.wait_s > self._floor_s and now - self._healthy_since >= HEALTHY_SECONDS_BEFORE_NARROWING:
                self._narrowed_from = self.wait_s
                self._set_wait(max(self._floor_s, self.wait_s / 2))
                self._healthy_since = now
                if self.wait_s == self.base_wait_s:
                    self.detail = None
                    log.info("fetch wait back to normal", consumer=self.name, fetch_wait_ms=round(self.wait_s * 1000))
            return
        behind = self._behind()
        if not behind:
            self._empty_since = None
            return
        if self._empty_since is None:
            self._empty_since = now
        empty_s = now - self._empty_since
        if empty_s < max(MIN_EMPTY_S, EMPTY_WAITS_BEFORE_WIDENING * self.wait_s) or self.wait_s >= self.max_wait_s:
            return
        self._empty_since = now
        self._set_wait(min(self.max_wait_s, self.wait_s * 2))
        if self._narrowed_from is not None and self.wait_s >= self._narrowed_from:
            self._floor_s = self._narrowed_from  # narrowing did not hold: this wait is needed from now on
            self._narrowed_from = None
        self._healthy_since = now
        tp, waiting = max(behind.items(), key=lambda item: item[1])
        self.detail = (f"{tp.topic}[{tp.partition}]: the broker returned no records though {waiting} are waiting; "
                       f"fetch wait widened to {round(self.wait_s * 1000)} ms")
        self.on_widen()
        log.warning("broker returns no records though some are waiting: widening the fetch wait",
                    consumer=self.name, partition=f"{tp.topic}[{tp.partition}]", waiting=waiting,
                    fetch_wait_ms=round(self.wait_s * 1000), advice=ADVICE)

    def _behind(self) -> dict[TopicPartition, int]:
        out = {}
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.position(tp)
            if highwater is not None and position is not None and highwater > position:
                out[tp] = highwater - position
        return out

    def _set_wait(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.consumer._fetcher._fetch_max_wait_ms = round(wait_s * 1000)  # read by every fetch request it builds
