"""IngestLease: which ingest may hold the account's one Alpaca connection (redis-py's ``Lock`` with a TTL)."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_result,
    wait_fixed,
)

from schemas.topics import INGEST_LEASE_KEY

log = structlog.get_logger(__name__)

RELEASE_TIMEOUT_S = 1.0  # a release is a courtesy to the standby: the lease expires by itself anyway


class IngestLease:
    """A redis-py ``Lock`` at ``INGEST_LEASE_KEY`` whose token is this ingest's instance name: taken with
    ``SET NX PX``, its TTL reset (``reacquire``) every third of it, released only by its holder.

    Alpaca allows one stream connection per account, so only the holder connects; a hot standby polls
    and takes over within about one TTL after the holder dies (at once when it releases on shutdown).
    While Redis is unreachable the holder keeps streaming (nobody else can take the lease then either);
    it steps down only when it sees another holder.
    """

    def __init__(self, redis: Redis, owner: str, ttl_s: float, key: str = INGEST_LEASE_KEY) -> None:
        self.redis = redis
        self.owner = owner
        self.key = key
        # One task owns the lease: no thread-local token; release errors are ours to judge.
        self.lock = redis.lock(key, timeout=ttl_s, thread_local=False, raise_on_release_error=False)
        self.poll_s = min(1.0, ttl_s / 5)
        self.renew_s = ttl_s / 3
        self._redis_down = False
        self._seen: str | None = None  # the holder a standby last reported

    async def holder(self) -> str | None:
        """Who holds the lease now (None: free)."""
        value = await self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    async def acquire(self) -> None:
        """Wait as a standby until the lease is ours (cancel to stop waiting). Polls every ``poll_s``;
        while Redis is unreachable it says so once and keeps polling."""
        await AsyncRetrying(
            retry=retry_if_result(lambda taken: not taken) | retry_if_exception_type(RedisError),
            wait=wait_fixed(self.poll_s),
            before_sleep=lambda state: self._failed(state, "cannot take the lease"),
        )(self._take)

    async def keep(self) -> None:
        """Reset the TTL now and every ``renew_s`` while the lease is ours; return once another ingest holds
        it. Redis unreachable: say so once and stream on (retrying at the same pace)."""
        await AsyncRetrying(
            retry=retry_if_result(bool) | retry_if_exception(_redis_down),
            wait=wait_fixed(self.renew_s),
            before_sleep=lambda state: self._failed(state, "cannot renew the lease; streaming on"),
        )(self._renew)
        try:
            holder = await self.holder()
        except RedisError:
            holder = None
        log.error("lease lost: another ingest holds the alpaca connection now; stepping down", holder=holder)

    async def release(self) -> None:
        """Give the lease up (only if still ours), so a standby takes over at once."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_S):
                await self.lock.release()
        except LockError:  # not ours (any more): nothing to give up
            pass
        except (RedisError, TimeoutError) as exc:
            log.warning("lease not released (redis unreachable); it expires by itself", error=str(exc))

    async def _take(self) -> bool:
        """One standby poll: take the lease if free, else report a new holder."""
        if await self.lock.acquire(blocking=False, token=self.owner):
            self._redis_ok()
            return True
        holder = await self.holder()
        self._redis_ok()
        if holder != self._seen and holder is not None:
            log.info("standby: another ingest holds the alpaca connection", holder=holder)
            self._seen = holder
        return False

    async def _renew(self) -> bool:
        """Reset the TTL; True while the lease is ours. Expired unnoticed (e.g. Redis restarted empty):
        taken back if free."""
        try:
            await self.lock.reacquire()
        except LockNotOwnedError:
            if not await self.lock.acquire(blocking=False, token=self.owner):
                return False
        self._redis_ok()
        return True

    def _failed(self, state: RetryCallState, what: str) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is None:
            return  # a standby poll found the lease taken: not a failure
        if not self._redis_down:
            log.error(f"redis unreachable: {what}", error=str(exc))
        self._redis_down = True

    def _redis_ok(self) -> None:
        if self._redis_down:
            log.warning("redis reachable again")
        self._redis_down = False


def _redis_down(exc: BaseException) -> bool:
    """A Redis error worth retrying: the server unreachable, not the lock's own ``not held`` verdict."""
    return isinstance(exc, RedisError) and not isinstance(exc, LockError)
