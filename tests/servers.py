"""Where the test session's broker and Redis come from: servers you name, containers, or native processes.

- ``TICKWIRE_TEST_KAFKA_BOOTSTRAP`` / ``TICKWIRE_TEST_REDIS_URL``: use these servers (e.g. a shared Redpanda).
- ``TICKWIRE_TEST_CONTAINERS=auto`` (default): Redpanda and Redis containers (testcontainers) when a Docker
  engine answers, else native processes (the embedded Apache Kafka broker, a redis-server).
- ``TICKWIRE_TEST_CONTAINERS=on``: containers; the session stops with one clear error when no engine answers.
- ``TICKWIRE_TEST_CONTAINERS=off``: native processes, even with Docker.

Every test runs the same on either; the only difference is the broker's fidelity (see
docs/embedded-broker.md, "What it cannot do").
"""

from __future__ import annotations

import asyncio
import gc
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

ContainerMode = Literal["auto", "on", "off"]
MODES: tuple[ContainerMode, ...] = ("auto", "on", "off")
# The images docker-compose.yml runs, so container tests see the production broker.
REDPANDA_IMAGE = "docker.redpanda.com/redpandadata/redpanda:v24.2.7"
REDIS_IMAGE = "redis:7-alpine"
CONTAINER_START_TIMEOUT_S = 120


class ServerSetupError(RuntimeError):
    """The session cannot get the servers it was told to use."""


def container_mode(environ: dict[str, str] | os._Environ[str] = os.environ) -> ContainerMode:
    """``TICKWIRE_TEST_CONTAINERS`` (auto, on or off)."""
    value = environ.get("TICKWIRE_TEST_CONTAINERS", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ServerSetupError(f"TICKWIRE_TEST_CONTAINERS={value!r}: expected one of {', '.join(MODES)}")
    return value  # type: ignore[return-value]


def docker_engine_available() -> bool:
    """True when a Docker engine answers a ping (a docker CLI alone does not count)."""
    import docker

    # docker-py leaves its socket to the garbage collector when the engine is missing: close it here, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # no socket, no permission, no daemon: all mean "no engine"
            return False
        finally:
            gc.collect()


def use_containers(mode: ContainerMode, engine_available: bool) -> bool:
    """Whether this session runs its servers in containers."""
    if mode == "on" and not engine_available:
        raise ServerSetupError("TICKWIRE_TEST_CONTAINERS=on but no Docker engine answers "
                               "(start one, or use auto/off for native servers)")
    return mode != "off" and engine_available


@asynccontextmanager
async def redpanda_container() -> AsyncIterator[str]:
    """A Redpanda container for the session; yields its bootstrap address."""
    from testcontainers.community.kafka import RedpandaContainer

    container = RedpandaContainer(image=REDPANDA_IMAGE)
    await asyncio.to_thread(container.start, CONTAINER_START_TIMEOUT_S)
    try:
        yield container.get_bootstrap_server()
    finally:
        await asyncio.to_thread(container.stop)


@asynccontextmanager
async def redis_container() -> AsyncIterator[str]:
    """A Redis container for the session; yields its URL (database 0)."""
    from testcontainers.community.redis import RedisContainer

    container = RedisContainer(image=REDIS_IMAGE)
    await asyncio.to_thread(container.start)
    try:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(container.port)}/0"
    finally:
        await asyncio.to_thread(container.stop)
