"""``GET /api/v1/stats`` and ``GET /metrics``: the pipeline's counters, as JSON and for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from consumers.api.dependencies import Context
from consumers.api.models import StatsResponse
from consumers.api.status_reads import read_ingest_status, read_processor_stats

router = APIRouter(tags=["stats"])


@router.get("/api/v1/stats", response_model=StatsResponse)
async def stats(context: Context) -> StatsResponse:
    """The processor's counters and the ingest's status (null when the ingest is not running)."""
    processor = await read_processor_stats(context.redis)
    ingest = await read_ingest_status(context.redis)
    return StatsResponse(processor=processor, ingest=ingest, ingest_running=ingest is not None)


@router.get("/metrics", response_class=Response, include_in_schema=True,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
async def metrics(context: Context) -> Response:
    """Prometheus metrics; still answered when Redis is down (``tickwire_redis_up 0``)."""
    try:
        context.metrics.set_pipeline_stats(await read_processor_stats(context.redis),
                                           await read_ingest_status(context.redis))
    except (RedisError, OSError):
        context.metrics.set_pipeline_stats(None, None)
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)
