"""Connections the processor's agents share (one Redis client per worker process)."""

from __future__ import annotations

from redis.asyncio import Redis

from processors.app import settings

redis = Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", health_check_interval=10)
