"""ReplayRun: what a replay run read, how it found its range, and what it wrote (stored in its namespace)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from schemas.topics import REPLAY_RUN_KEY, namespaced, replay_namespace

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LIVE = "live"  # what `tickwire diff` calls the live state; never a run id


class PartitionSpan(BaseModel):
    """Offsets ``[start, end)`` of one source partition and how each was found."""

    model_config = ConfigDict(frozen=True)

    partition: int
    start: int
    end: int
    start_how: str
    end_how: str
    topic: str = ""  # which source topic (empty in runs of one topic, the run's source_topic)


class ReplayRun(BaseModel):
    """The manifest of a replay run, JSON at ``replay:{run}:tickwire:replay:run``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    namespace: str
    source_topic: str  # the first topic read; source_topics lists them all
    partitions: list[PartitionSpan]
    notes: list[str]
    time_field: str
    symbols_filter: list[str]
    speed: float
    max_quote_age_s: float
    output_topics: dict[str, str]
    started_at: str
    finished_at: str
    records_read: int
    records_replayed: int
    accepted: int
    rejected: int
    symbols: list[str]
    resolve_seconds: float
    replay_seconds: float
    # Runs before P&L replay had neither: one topic, the price stage.
    source_topics: list[str] = []
    stages: list[str] = ["price"]
    accounts: list[str] = []  # accounts whose positions the run valued (P&L)

    @property
    def topics(self) -> list[str]:
        """Every topic the run read."""
        return self.source_topics or [self.source_topic]

    def spans(self, topic: str) -> list[PartitionSpan]:
        """The partitions the run read of ``topic``."""
        return [p for p in self.partitions if (p.topic or self.source_topic) == topic]

    @property
    def rate_per_second(self) -> float:
        """Records replayed per second of replaying (range resolution excluded)."""
        return self.records_replayed / self.replay_seconds if self.replay_seconds > 0 else 0.0


def check_run_id(run_id: str) -> str:
    """The run id, or ValueError saying what a run id may contain."""
    if run_id == LIVE or not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValueError(f"bad run id {run_id!r}: 1-64 letters, digits, '-' or '_', not {LIVE!r}")
    return run_id


async def load_run(redis: Redis, run_id: str) -> ReplayRun | None:
    """The manifest of a finished run, or None."""
    raw = await redis.get(namespaced(REPLAY_RUN_KEY, replay_namespace(check_run_id(run_id))))
    return ReplayRun.model_validate_json(raw) if raw else None
