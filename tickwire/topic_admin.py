"""Creates tickwire's topics (idempotent): partitions and cleanup policies are chosen, not left to auto-creation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS, TopicSpec

log = structlog.get_logger(__name__)


def new_topic(spec: TopicSpec, partitions: int, replication: int = 1) -> NewTopic:
    """The CreateTopics request of a spec: compacted topics keep the latest value of every key."""
    configs = {"cleanup.policy": "compact"} if spec.compacted else {}
    return NewTopic(spec.name, partitions, replication, topic_configs=configs)


async def ensure_topics(
    bootstrap: str,
    partitions: int,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    replication: int = 1,
    **client_options: Any,
) -> list[str]:
    """Create the missing topics; returns the names it created (``client_options``: TLS/SASL for aiokafka)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [new_topic(s, partitions, replication) for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: fine
            log.info("topics created", topics=[t.name for t in missing], partitions=partitions)
        return [t.name for t in missing]
    finally:
        await admin.close()
