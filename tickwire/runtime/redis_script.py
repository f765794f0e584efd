"""PipelinedScript: a Lua script queued with EVALSHA in pipelines, loaded once instead of checked every time.

redis-py's ``Script``, called on a pipeline, makes the pipeline send ``SCRIPT EXISTS`` (and wait for
the answer) before every ``execute``: a second Redis round trip for every batch a stage writes.
Here the script is queued as a plain EVALSHA; if Redis does not know it (first use, a restarted or
flushed Redis), the caller loads it and runs its batch again (every projection is idempotent).

A batch's items travel as one argument, a MessagePack array (:func:`pack_items`) that the script reads
with ``cmsgpack.unpack``: redis-py encodes every argument in Python, a quarter of the processor's time in a
cProfile when each price or revaluation was an argument of its own (cProfile overstates such small calls).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgpack
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

__all__ = ["NoScriptError", "PipelinedScript", "pack_items", "retry_while_redis_down"]

log = structlog.get_logger(__name__)
T = TypeVar("T")

# NoScriptError: Redis restarted or flushed its scripts; the next attempt loads the script again.
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, NoScriptError)


def pack_items(items: Sequence[str | bytes | int]) -> bytes:
    """One script argument holding ``items`` (a Lua array of strings and numbers after ``cmsgpack.unpack``)."""
    # use_bin_type=False: the raw string format, the one every Redis's cmsgpack reads (Redis 6's rejects bin).
    return msgpack.packb(items, use_bin_type=False)


async def retry_while_redis_down(write: Callable[[], Awaitable[T]], what: str) -> T:
    """Await ``write()`` until it succeeds, retrying with capped exponential backoff while Redis is unreachable.

    The stream waits meanwhile (nothing is acknowledged, nothing is lost); one warning line per failed
    attempt names ``what`` was being written, one info line says when Redis answers again.
    """
    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("redis unavailable, retrying", batch=what, error=f"{type(exc).__name__}: {exc}",
                    attempt=state.attempt_number, retry_in_s=round(state.upcoming_sleep, 2))

    async for attempt in AsyncRetrying(retry=retry_if_exception_type(_REDIS_DOWN),
                                       wait=wait_exponential(multiplier=0.1, max=5.0),
                                       before_sleep=log_retry, reraise=True):
        with attempt:
            result = await write()
    if attempt.retry_state.attempt_number > 1:
        log.info("redis reachable again", batch=what, attempts=attempt.retry_state.attempt_number)
    return result


class PipelinedScript:
    """One Lua script for pipelines: ``queue`` it per update; ``execute`` runs a pipeline holding it."""

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._loaded = False

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[object]) -> None:
        """Queue one EVALSHA on ``pipe``."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[arg-type]

    async def load(self) -> None:
        """Make Redis know the script (SCRIPT LOAD is idempotent)."""
        await self.redis.script_load(self.source)
        self._loaded = True

    async def ensure_loaded(self) -> None:
        """Load the script unless this process already did (and Redis has not said it forgot it since)."""
        if not self._loaded:
            await self.load()

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """Execute ``pipe``; on NoScriptError remember to load the script again before the retry."""
        try:
            return await pipe.execute()
        except NoScriptError:
            self._loaded = False
            raise
