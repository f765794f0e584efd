"""Reads of what other components report in Redis: the ingest's status and the processor's counters."""

from __future__ import annotations

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from schemas.events import IngestStatus
from schemas.topics import INGEST_STATUS_KEY, PROCESSOR_STATS_KEY
from tickwire.redis_values import as_text

log = structlog.get_logger(__name__)


async def read_ingest_status(redis: Redis) -> IngestStatus | None:
    """The ingest's latest status; None when it is not running (the key has a short TTL) or unreadable."""
    raw = await redis.get(INGEST_STATUS_KEY)
    if raw is None:
        return None
    try:
        return IngestStatus.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("unreadable ingest status", error=str(exc).splitlines()[0])
        return None


async def read_processor_stats(redis: Redis) -> dict[str, int]:
    """The processor's counters (accepted, published, rejected.<reason>, ...)."""
    stats = await redis.hgetall(PROCESSOR_STATS_KEY)
    out = {}
    for name, value in stats.items():
        try:
            out[as_text(name)] = int(value)
        except ValueError:
            continue  # a counter is an integer; anything else there is not ours to show
    return dict(sorted(out.items()))
