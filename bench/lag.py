"""Consumer lag of every consumer group on the broker: records in the partitions it committed, not yet committed."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from tickwire.kafka import READ_ISOLATION


class LagReader:
    """``await lag()`` after ``start()``; the admin client and the offsets consumer stay connected until ``stop()``."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         isolation_level=READ_ISOLATION)  # lag to what a reader can read

    async def start(self) -> None:
        """Connect both clients."""
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self) -> dict[str, int]:
        """Group -> records behind: log end offset minus committed offset, summed over its committed partitions."""
        out = {}
        for group, *_ in sorted(await self.admin.list_consumer_groups()):
            committed = {tp: meta.offset for tp, meta in (await self.admin.list_consumer_group_offsets(group)).items()
                         if meta.offset >= 0}
            ends = await self.consumer.end_offsets(list(committed)) if committed else {}
            out[group] = sum(max(0, ends[tp] - offset) for tp, offset in committed.items())
        return out
