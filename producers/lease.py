"""IngestLease: which ingest may hold the account's one Alpaca connection (a Redis key with a TTL)."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.topics import INGEST_LEASE_KEY

log = structlog.get_logger(__name__)

# Compare-and-extend / compare-and-delete: only the holder may renew or release.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class IngestLease:
    """A lease at ``INGEST_LEASE_KEY``: ``SET NX PX`` to take it, renewed every third of its TTL.

    Alpaca allows one stream connection per account, so only the holder connects; a hot standby polls
    and takes over within about one TTL after the holder dies (at once when it releases on shutdown).
    While Redis is unreachable the holder keeps streaming (nobody else can take the lease then either);
    it steps down only when it sees another holder.
    """

    def __init__(self, redis: Redis, owner: str, ttl_s: float, key: str = INGEST_LEASE_KEY) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = round(ttl_s * 1000)  # Redis PX
        self.key = key
        self.poll_s = min(1.0, ttl_s / 5)
        self.renew_s = ttl_s / 3
        self._redis_down = False
        self._holding = False  # checked around every await: a cancel swallowed inside redis-py must not renew

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lease; False if someone else holds it (or it expired)."""
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms))

    async def release(self) -> None:
        """Give the lease up (only if still ours), so a standby takes over at once; ends :meth:`hold`."""
        self._holding = False
        try:
            await self.redis.eval(_RELEASE, 1, self.key, self.owner)
        except RedisError as exc:
            log.warning("lease not released (redis unreachable); it expires by itself", error=str(exc))

    def stop_holding(self) -> None:
        """Make :meth:`hold` return at its next step, without releasing (the socket must close first)."""
        self._holding = False

    async def holder(self) -> str | None:
        """Who holds the lease now (None: free)."""
        value = await self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait as a standby until the lease is ours (True) or ``stop`` is set (False)."""
        seen: str | None = None
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    self._redis_ok()
                    return True
                holder = await self.holder()
                self._redis_ok()
                if holder != seen and holder is not None:
                    log.info("standby: another ingest holds the alpaca connection", holder=holder)
                    seen = holder
            except RedisError as exc:
                self._redis_failed(exc, "cannot take the lease")
            await _wait(stop, self.poll_s)
        return False

    async def hold(self) -> None:
        """Renew until the lease is lost to another holder (or released), then return."""
        self._holding = True
        while self._holding:
            await asyncio.sleep(self.renew_s)  # the renewal period, not synchronisation
            try:
                if not self._holding:
                    return
                renewed = await self.renew()
                if not self._holding:
                    return
                if renewed or await self.try_acquire():  # expired unnoticed (redis restart): take it back
                    self._redis_ok()
                    continue
                log.error("lease lost: another ingest holds the alpaca connection now; stepping down",
                          holder=await self.holder())
                return
            except RedisError as exc:
                self._redis_failed(exc, "cannot renew the lease; streaming on")

    def _redis_failed(self, exc: Exception, what: str) -> None:
        if not self._redis_down:
            log.error(f"redis unreachable: {what}", error=str(exc))
        self._redis_down = True

    def _redis_ok(self) -> None:
        if self._redis_down:
            log.warning("redis reachable again")
        self._redis_down = False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
