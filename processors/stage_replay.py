"""A registered stage run by ``tickwire replay``: its own I/O side over its own pure handler, into a run.

``consumers/tools/replay.py`` reads the range; the stage registry says which stage replays which topics and
which of its outputs a run keeps (:class:`~processors.registry.ReplaySpec`); this drives the stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry

from processors.metrics import ProcessorMetrics
from processors.registry import STAGES, StageContext, StageSpec, replayed_by
from tickwire.runtime.replay import ReplayContext, RunOutputs


class StageReplay:
    """A stage run by ``tickwire replay``: its own I/O side over its own pure handler, writing into the run.

    No consumer group, no restore and no timers: a run starts from empty state, as a fresh member would, and
    reads its range once. Its settings are the live processor's (the environment's), but for what a run
    changes: keys live as long as the run (``TICKWIRE_REPLAY_TTL_SECONDS``), the quote age limit is the run's,
    and marks are not paced (nothing reads them).
    """

    def __init__(self, spec: StageSpec[Any], context: ReplayContext) -> None:
        assert spec.replay is not None
        from processors.settings import ProcessorSettings

        values = {name: value for name, value in context.settings.model_dump().items()
                  if name in ProcessorSettings.model_fields}
        values.update(context.overrides)
        values.update(price_ttl_s=context.ttl_seconds, pnl_mark_interval_s=0.0, stages=(spec.name,))
        settings = ProcessorSettings(**values)
        self.name = spec.name
        self.topics = spec.replay.topics(settings.processor_app_id)
        self.outputs = RunOutputs(context.producer, context.run_id, spec.replay.outputs, spec.replay.accepted,
                                  spec.replay.rejected)
        self.counts = self.outputs.counts
        self.stage = spec.build(StageContext(settings, context.redis, self.outputs,
                                             ProcessorMetrics(CollectorRegistry()), namespace=context.namespace,
                                             replay=True))

    @property
    def output_topics(self) -> dict[str, str]:
        """Live topic name -> the run's topic name."""
        return dict(self.outputs.topics)

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """One batch through the stage, as live; returns once Redis and the run's topics have it."""
        await self.stage.handle(records)
        await self.outputs.flush()

    async def finish(self) -> None:
        """What the stage holds until a commit goes out now."""
        await self.stage.before_commit()
        await self.outputs.flush()


def replay_handlers(context: ReplayContext, topics: Iterable[str]) -> list[StageReplay]:
    """The replay of every stage that reads one of ``topics`` (ValueError naming the replayable topics if none)."""
    by_topic = replayed_by(context.settings.processor_app_id)
    chosen: list[StageSpec[Any]] = []
    for topic in topics:
        if topic not in by_topic:
            raise ValueError(f"no stage replays {topic!r}; replayable topics: {', '.join(by_topic)}")
        chosen += [spec for spec in by_topic[topic] if spec not in chosen]
    return [StageReplay(spec, context) for spec in STAGES if spec in chosen]
