"""Creates tickwire's topics (idempotent) so partition counts are chosen, not left to auto-creation."""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS, TopicSpec

log = structlog.get_logger(__name__)


async def ensure_topics(bootstrap: str, partitions: int, specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create the missing topics; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(s.name, partitions, 1) for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: fine
            log.info("topics created", topics=[t.name for t in missing], partitions=partitions)
        return [t.name for t in missing]
    finally:
        await admin.close()
