"""ProgressReporter: a member's position per owned partition of a topic, written to Redis about once a second.

Each entry holds the next offset to process and the high watermark of the member's last fetch
(``schemas.topics.progress_key``): ``/health`` calls prices that stop advancing while quotes wait a stall,
whatever the cause. The same figures give the consumer lag per partition (``lag``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from schemas.events import PartitionProgress
from schemas.timestamps import format_ns, now_ns
from schemas.topics import processed_field, progress_key

log = structlog.get_logger(__name__)

REPORT_EVERY_S = 1.0
PROGRESS_TTL_S = 24 * 3600  # a hash left by a pipeline that is gone expires instead of staying forever


class ProgressReporter:
    """Reports ``done`` (next offset per partition) of ``topic``; ``lag(tp, records)`` hears each partition's lag."""

    def __init__(self, redis: Redis, consumer: AIOKafkaConsumer, done: dict[TopicPartition, int], app_id: str,
                 topic: str, lag: Callable[[TopicPartition, int], None] | None = None) -> None:
        self.redis = redis
        self.consumer = consumer
        self.done = done
        self.topic = topic
        self.key = progress_key(app_id, topic)
        self.lag = lag
        self._advanced: dict[int, tuple[int, str]] = {}  # partition -> (offset, when it last advanced)

    async def run(self) -> None:
        """Report until cancelled; Redis errors are logged once per outage and retried."""
        failing = False
        while True:
            try:
                await self.report()
                if failing:
                    log.info("progress reports reach Redis again")
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("cannot write progress to Redis, retrying", error=f"{type(exc).__name__}: {exc}")
                failing = True
            await asyncio.sleep(REPORT_EVERY_S)  # reporting period

    async def report(self) -> None:
        """One report: every owned partition of the topic, and the lag gauge."""
        now = format_ns(now_ns())
        fields: dict[FieldT, EncodableT] = {}
        owned = [tp for tp in self.consumer.assignment() if tp.topic == self.topic]
        # Read before the first await: a rebalance during it may revoke a partition, and aiokafka's
        # highwater() asserts on one it no longer owns.
        highwaters = {tp: self.consumer.highwater(tp) for tp in owned}
        for tp in owned:
            offset = self.done.get(tp)
            if offset is None:
                with contextlib.suppress(Exception):  # not fetched yet: the committed offset, if any
                    offset = await self.consumer.committed(tp)
            offset = offset or 0
            previous = self._advanced.get(tp.partition)
            if previous is None or offset > previous[0]:
                previous = self._advanced[tp.partition] = (offset, now)
            highwater = highwaters[tp]
            fields[processed_field(tp.partition)] = PartitionProgress(
                offset=offset, advanced_at=previous[1], updated_at=now, highwater=highwater).to_json()
            if highwater is not None and self.lag is not None:
                self.lag(tp, max(highwater - offset, 0))
        if fields:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.key, mapping=fields)
            pipe.expire(self.key, PROGRESS_TTL_S)
            await pipe.execute()

    async def run_sidecar(self, stop: asyncio.Event) -> None:
        """:meth:`run` as a sidecar (``stop`` cancels it)."""
        await self.run()
