"""Real servers for the test session: a Kafka-protocol broker and redis-server.

Set TICKWIRE_TEST_KAFKA_BOOTSTRAP / TICKWIRE_TEST_REDIS_URL to use servers of your own (e.g. Redpanda);
otherwise, once per session, Redpanda and Redis containers when a Docker engine answers, else the embedded
Apache Kafka broker (KRaft, its log in the session's temporary directory) and a redis-server on free ports
(TICKWIRE_TEST_CONTAINERS=auto|on|off, see tests/servers.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from deploy.embedded import EmbeddedBroker, EmbeddedRedis
from tests.servers import container_mode, docker_engine_available, redis_container, redpanda_container, use_containers
from tickwire.topic_admin import ensure_topics

TEST_PARTITIONS = 4

# The test machine is shared with brokers and workers: judge properties, not generation speed.
hypothesis_settings.register_profile("tickwire", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("tickwire")
_redis_db = itertools.count(1)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where server and component logs of this test session go."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def containers() -> bool:
    """Whether this session's servers run in containers (TICKWIRE_TEST_CONTAINERS and a Docker engine)."""
    return use_containers(container_mode(), docker_engine_available())


@pytest.fixture(scope="session")
async def kafka_bootstrap(log_dir: Path, containers: bool, tmp_path_factory: pytest.TempPathFactory
                          ) -> AsyncIterator[str]:
    """bootstrap servers of a running broker with tickwire's topics created."""
    external = os.environ.get("TICKWIRE_TEST_KAFKA_BOOTSTRAP")
    if external:
        await ensure_topics(external, TEST_PARTITIONS)
        yield external
        return
    if containers:
        async with redpanda_container() as bootstrap:
            await ensure_topics(bootstrap, TEST_PARTITIONS)
            yield bootstrap
        return
    async with EmbeddedBroker(tmp_path_factory.mktemp("kafka"), log_dir) as broker:
        await ensure_topics(broker.bootstrap, TEST_PARTITIONS)
        yield broker.bootstrap


@pytest.fixture(scope="session")
async def redis_server_url(log_dir: Path, containers: bool) -> AsyncIterator[str]:
    """URL (database 0) of a running redis-server."""
    external = os.environ.get("TICKWIRE_TEST_REDIS_URL")
    if external:
        yield external
        return
    if containers:
        async with redis_container() as url:
            yield url
        return
    async with EmbeddedRedis(log_dir) as server:
        yield server.url


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """A URL to an empty Redis database of this test's own (1..15, flushed before use)."""
    db = next(_redis_db) % 15 + 1
    url = redis_server_url.rsplit("/", 1)[0] + f"/{db}"
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on this test's Redis database."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
