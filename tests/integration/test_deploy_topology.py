"""The docker-compose topology, run natively: the same services, commands and settings as docker-compose.yml,
with the container hostnames and fixed ports replaced by this session's broker, Redis and free ports."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.asyncio import Redis

from deploy.embedded.process import ManagedProcess
from schemas.topics import ALL_TOPICS, INGEST_LEASE_KEY, POSITIONS
from tests.helpers import eventually, tickwire_env, unique_symbol
from tests.integration.tools_support import start_group_at_end, tickwire

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
_DEFAULTED = re.compile(r"^\$\{[A-Z_]+:-(.*)\}$")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compose_services() -> dict[str, dict[str, Any]]:
    """The tickwire services of docker-compose.yml (same image, the role in the command)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: s for name, s in services.items() if s.get("image") == "tickwire:local"}


def native_env(service: dict[str, Any], replace: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """A service's compose environment with defaults resolved, container addresses replaced, then overrides."""
    env: dict[str, str] = {}
    for name, value in service["environment"].items():
        if value is None:
            continue  # passed through from the host only when set there
        text = str(value)
        match = _DEFAULTED.match(text)
        text = match.group(1) if match else text
        for container_address, native in replace.items():
            text = text.replace(container_address, native)
        env[name] = text
    return tickwire_env(**{**env, **overrides})


async def healthy(role: str, env: dict[str, str], *args: str) -> bool:
    """The image's HEALTHCHECK for a role, run natively."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "deploy.healthcheck", role, *args, env=env)
    return await proc.wait() == 0


async def test_compose_topology_given_native_processes_prices_every_symbol_behind_the_api(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that the compose services, started natively as compose starts them, create compacted topics,
    elect one active ingest, and serve prices of every symbol through the API, each passing its healthcheck."""
    # Arrange
    services = compose_services()
    symbols = [unique_symbol("C") for _ in range(2)]
    feed_port, api_port = free_port(), free_port()
    app_id = f"test-topology-{uuid.uuid4().hex[:8]}"
    replace = {"redpanda:9092": kafka_bootstrap, "redis://redis:6379/0": redis_url,
               "ws://feed:8765": f"ws://127.0.0.1:{feed_port}", "http://feed:8765": f"http://127.0.0.1:{feed_port}"}
    common = {"TICKWIRE_SYMBOLS": ",".join(symbols), "TICKWIRE_PROCESSOR_APP_ID": app_id,
              "TICKWIRE_API_HOST": "127.0.0.1", "TICKWIRE_API_PORT": str(api_port), "TICKWIRE_LOG_FORMAT": "console"}
    envs = {name: native_env(s, replace, {**common, "TICKWIRE_PROCESSOR_METRICS_PORT": str(free_port()),
                                          "TICKWIRE_INGEST_METRICS_PORT": str(free_port())})
            for name, s in services.items()}
    processes: dict[str, ManagedProcess] = {}
    for name, service in services.items():
        args = [str(a) for a in service["command"]]
        if args[0] == "feed":
            args = [*args[:2], "--host", "127.0.0.1", "--port", str(feed_port)]
        if args[0] != "create-topics":
            processes[name] = ManagedProcess(name, [sys.executable, "-m", "tickwire", *args],
                                             log_dir / f"compose-{name}-{uuid.uuid4().hex[:6]}.log", envs[name])
    roles = {name: str(services[name]["command"][0]) for name in processes}

    # Act: the one-shot topics service first, then the rest, as depends_on orders them
    topics = await tickwire(*[str(a) for a in services["topics"]["command"]], env=envs["topics"])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([
            ConfigResource(ConfigResourceType.TOPIC, name)
            for name in (POSITIONS.name, f"{app_id}-latest_price_by_symbol-changelog")
        ])
    finally:
        await admin.close()
    policies = {r[3]: dict((c[0], c[1]) for c in r[4]).get("cleanup.policy")
                for response in described for r in response.resources}
    await start_group_at_end(kafka_bootstrap, app_id, [t.name for t in ALL_TOPICS])  # skip the session's backlog
    try:
        for process in processes.values():
            await process.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=5) as client:

            async def every_symbol_priced() -> bool:
                try:
                    answers = [await client.get(f"/api/v1/prices/{s}") for s in symbols]
                except httpx.TransportError:
                    return False
                return all(a.status_code == 200 for a in answers)

            await eventually(every_symbol_priced, 90, "the API to serve a price of every symbol",
                             *processes.values())
            prices = {s: (await client.get(f"/api/v1/prices/{s}")).json() for s in symbols}

        async def all_healthy() -> bool:
            checks = [healthy(roles[n], envs[n], *(["--port", str(feed_port)] if roles[n] == "feed" else []))
                      for n in processes]
            return all(await asyncio.gather(*checks))

        await eventually(all_healthy, 30, "every service's healthcheck to pass", *processes.values())
        lease_holder = await redis.get(INGEST_LEASE_KEY)
    finally:
        await asyncio.gather(*(process.stop() for process in processes.values()))

    # Assert
    assert topics.code == 0, topics.err
    assert policies == {POSITIONS.name: "compact", f"{app_id}-latest_price_by_symbol-changelog": "compact"}
    assert sorted(roles.values()) == ["api", "feed", "ingest", "ingest", "processor", "processor", "processor"]
    assert all(prices[s]["symbol"] == s and float(prices[s]["mid"]) > 0 for s in symbols)
    assert lease_holder is not None  # one of the two ingests streams, the other stands by
