"""Reads of what other components report in Redis: the ingest's status and the processor's counters."""

from __future__ import annotations

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from schemas.events import IngestStatus, PartitionProgress
from schemas.topics import INGEST_STATUS_KEY, PROCESSOR_STATS_KEY, QUOTES_RAW, progress_key
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


async def read_price_progress(redis: Redis, app_id: str) -> dict[int, PartitionProgress]:
    """The price stage's latest progress report per ``quotes.raw`` partition (unreadable entries skipped)."""
    out = {}
    for field, raw in (await redis.hgetall(progress_key(app_id, QUOTES_RAW.name))).items():
        name = as_text(field)
        if not name.startswith("processed:"):
            continue
        try:
            out[int(name.split(":", 1)[1])] = PartitionProgress.model_validate_json(raw)
        except (ValueError, ValidationError):
            log.warning("unreadable progress entry", field=name)
    return out
