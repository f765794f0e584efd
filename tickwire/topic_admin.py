"""Creates tickwire's topics (idempotent), with their partitions and retention chosen, not left to the broker.

A stream topic (raw feeds, prices, P&L, dead letters, marks) keeps records for a bounded time *and* size per
partition (:class:`Retention`, from ``TICKWIRE_TOPIC_RETENTION_HOURS`` / ``TICKWIRE_TOPIC_RETENTION_MB``), so a
long run's disk stays bounded. A compacted topic (positions, subscriptions, closes, state changelogs) keeps the
newest record of every key for good: what a state restore reads. ``ensure_topics`` returns once every topic it
created has a leader for each partition, so the first produce does not meet "not leader" errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from schemas.topics import ALL_TOPICS, TopicSpec
from tickwire.kafka import aiokafka_security
from tickwire.settings import TickwireSettings

log = structlog.get_logger(__name__)

MS_PER_HOUR = 3_600_000
MAX_SEGMENT_BYTES = 128 * 1024 * 1024
COMPACTED_SEGMENT_MS = MS_PER_HOUR  # the cleaner never compacts the open segment: roll it at least hourly
LEADERS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Retention:
    """How long and how much a stream topic keeps, per partition."""

    hours: float = 24.0
    mb_per_partition: int = 1024

    @classmethod
    def of(cls, settings: TickwireSettings) -> Retention:
        """The retention ``settings`` name (TICKWIRE_TOPIC_RETENTION_HOURS, TICKWIRE_TOPIC_RETENTION_MB)."""
        return cls(settings.topic_retention_hours, settings.topic_retention_mb)


def topic_configs(spec: TopicSpec, retention: Retention) -> dict[str, str]:
    """The topic-level configs tickwire creates ``spec`` with."""
    if spec.compacted:
        return {"cleanup.policy": "compact", "segment.ms": str(COMPACTED_SEGMENT_MS)}
    retention_ms = max(1, round(retention.hours * MS_PER_HOUR))
    retention_bytes = retention.mb_per_partition * 1024 * 1024
    # Retention deletes whole segments: segments of an eighth of each limit keep the excess near an eighth.
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention_ms),
        "retention.bytes": str(retention_bytes),
        "segment.ms": str(max(1000, min(MS_PER_HOUR, retention_ms // 8))),
        "segment.bytes": str(max(1024 * 1024, min(MAX_SEGMENT_BYTES, retention_bytes // 8))),
    }


def new_topic(spec: TopicSpec, partitions: int, replication: int = 1, retention: Retention = Retention()) -> NewTopic:
    """The CreateTopics request of a spec."""
    return NewTopic(spec.name, partitions, replication, topic_configs=topic_configs(spec, retention))


async def ensure_topics(
    bootstrap: str,
    partitions: int,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    replication: int = 1,
    retention: Retention = Retention(),
    **client_options: Any,
) -> list[str]:
    """Create the missing topics; returns the names it created (``client_options``: TLS/SASL for aiokafka)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [new_topic(s, partitions, replication, retention) for s in specs if s.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        for name, code, *message in response.topic_errors:
            error = for_code(code)
            if code and error is not TopicAlreadyExistsError:  # created concurrently by another process: fine
                raise error(f"cannot create topic {name}: {message[0] if message and message[0] else error.message}")
        names = [t.name for t in missing]
        await _wait_for_leaders(admin, names)
        log.info("topics created", topics=names, partitions=partitions)
        return names
    finally:
        await admin.close()


async def ensure_topics_of(settings: TickwireSettings, specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """:func:`ensure_topics` with the partitions, replication, retention and security ``settings`` name."""
    assert settings.kafka_bootstrap_servers
    return await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions, specs,
                               settings.topic_replication, Retention.of(settings), **aiokafka_security(settings))


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Return once every partition of ``names`` has a leader (a new topic has none for a moment)."""
    deadline = time.monotonic() + LEADERS_TIMEOUT_S
    while True:
        topics = await admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
               for t in topics):
            return
        if time.monotonic() > deadline:
            raise KafkaError(f"topics {', '.join(names)} have no leader after {LEADERS_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.05)  # poll interval of a metadata request
