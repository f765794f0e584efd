"""StageBase: the I/O side of a stage, a :class:`~tickwire.runtime.member.BatchHandler` with the usual defaults.

A stage's pure handler (records in, results out) lives in ``domain/``; its I/O side sends the results to Kafka
(:class:`~tickwire.runtime.outputs.Outputs`) and Redis. Subclasses implement :meth:`StageBase.handle`
and override what they need: a stage without state has nothing to restore or forget, and its outputs are
durable once they are flushed.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord, TopicPartition

from tickwire.runtime.member import BatchConsumer
from tickwire.runtime.outputs import Outputs
from tickwire.runtime.timers import Sidecar


class StageBase:
    """Outputs flushed before each commit; no state to restore, forget or send again."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Process one batch, in order; return once its projections are written."""
        raise NotImplementedError

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        """Nothing to restore."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Nothing to forget."""

    async def before_commit(self) -> None:
        """Every output sent so far is acknowledged."""
        await self.outputs.flush()

    async def on_outputs_lost(self) -> None:
        """Reprocessing from the last commit sends everything again."""

    def sidecars(self, member: BatchConsumer) -> list[Sidecar]:
        """Tasks to run beside ``member``'s consumer loop (timers, reports)."""
        return []
