"""``GET /health``: whether the service and what it depends on work, probed on every call."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from consumers.api.dependencies import Context
from consumers.api.errors import one_line
from consumers.api.models import ComponentHealth, HealthResponse, dump
from consumers.api.price_freshness import price_freshness
from consumers.api.status_reads import read_ingest_status, read_price_progress
from schemas.events import IngestStatus
from schemas.timestamps import now_ns

router = APIRouter(tags=["health"])
SERVICE_NAME = "market-data-service"


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse,
                                    "description": "unhealthy: Redis down, or prices stopped while quotes arrive"}})
async def health(context: Context) -> JSONResponse:
    """``healthy``, ``degraded`` (broker down, ingest not running or disconnected) or
    ``unhealthy`` (Redis down, or prices stopped advancing while the ingest publishes), with the reason of
    each problem. 503 when unhealthy."""
    (redis_ok, redis_detail, ingest), broker = await asyncio.gather(_probe_redis(context), context.broker.probe())
    progress = await read_price_progress(context.redis, context.settings.processor_app_id) if redis_ok else {}
    freshness = price_freshness(progress, now_ns())
    lag: int | str = (await context.broker.consumer_lag() if broker.ok
                      else "unknown (broker unreachable)")
    problems = []
    if not redis_ok:
        problems.append(f"redis {redis_detail}")
    if not broker.ok:
        problems.append(f"broker {broker.detail}")
    ingest_health = _ingest_health(ingest, redis_ok)
    if not ingest_health.ok:
        problems.append(f"ingest: {ingest_health.detail}")
    if freshness.stale:
        problems.append(f"prices: {freshness.detail}")
    publishing = ingest_health.ok
    status = "unhealthy" if not redis_ok or (freshness.stale and publishing) else (
        "degraded" if problems else "healthy")
    body = HealthResponse(
        status=status, service=SERVICE_NAME,
        websocket_connected=bool(ingest and ingest.connected),
        subscribed_symbols=len(ingest.subscribed_symbols) if ingest else 0,
        reconnect_attempts=ingest.reconnect_attempts if ingest else None,
        consumer_lag=lag,
        redis=ComponentHealth(ok=redis_ok, detail=redis_detail),
        broker=ComponentHealth(ok=broker.ok, detail=broker.detail),
        ingest=ingest_health,
        prices=ComponentHealth(ok=redis_ok and not freshness.stale,
                               detail=freshness.detail if redis_ok else "unknown (redis unreachable)"),
        problems=problems,
    )
    return JSONResponse(dump(body), status_code=503 if status == "unhealthy" else 200)


async def _probe_redis(context: Context) -> tuple[bool, str, IngestStatus | None]:
    try:
        async with asyncio.timeout(2.0):
            await context.redis.ping()
            return True, "", await read_ingest_status(context.redis)
    except (RedisError, OSError, TimeoutError) as exc:
        return False, f"unreachable: {'timed out' if isinstance(exc, TimeoutError) else one_line(exc)}", None


def _ingest_health(ingest: IngestStatus | None, redis_ok: bool) -> ComponentHealth:
    if not redis_ok:
        return ComponentHealth(ok=False, detail="unknown (redis unreachable)")
    if ingest is None:
        return ComponentHealth(ok=False, detail="not running (no status in redis)")
    if not ingest.connected:
        return ComponentHealth(ok=False, detail=f"websocket disconnected {ingest.detail}".strip())
    if not ingest.healthy:
        return ComponentHealth(ok=False, detail=f"reports unhealthy {ingest.detail}".strip())
    return ComponentHealth(ok=True, detail=f"{ingest.role}, streaming {len(ingest.subscribed_symbols)} symbols")
