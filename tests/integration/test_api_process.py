"""``tickwire api`` as a process, started the way ``tickwire run`` starts it; finding a running stack."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import orjson
import pytest

from deploy.api_process import port_is_free, start_api_process
from deploy.settings import RunSettings
from tests.helpers import eventually, tickwire_env
from tickwire.endpoints import ENDPOINTS_FILE, with_running_stack

pytestmark = pytest.mark.integration


async def test_start_api_process_given_free_port_serves_and_records_endpoints(redis_url: str, tmp_path: Path) -> None:
    """Test the child `tickwire run` starts: it answers /health, is findable, and stops on SIGTERM."""
    settings = RunSettings(TICKWIRE_RUN_DIR=str(tmp_path), TICKWIRE_API_PORT=0, REDIS_URL=redis_url)
    env = tickwire_env(REDIS_URL=redis_url, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")

    api, line = await start_api_process(settings, env, tmp_path)
    try:
        assert api is not None and line.startswith("tickwire: dashboard http://127.0.0.1:")
        endpoints = orjson.loads((tmp_path / ENDPOINTS_FILE).read_bytes())
        assert endpoints["REDIS_URL"] == redis_url and endpoints["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9"

        async def health() -> int | None:
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    return (await client.get(f"{endpoints['api_url']}/health")).status_code
            except httpx.TransportError:
                return None

        assert await eventually(health, 60, "tickwire api to answer", api) == 200
    finally:
        if api is not None:
            await api.stop(timeout=10)
    assert api.proc is not None and api.proc.returncode is not None


async def test_start_api_process_given_busy_port_leaves_the_api_out(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = RunSettings(TICKWIRE_RUN_DIR=str(tmp_path), TICKWIRE_API_PORT=port)

        api, line = await start_api_process(settings, {"REDIS_URL": "redis://x:1/0"}, tmp_path)

        assert api is None and f"port {port} is in use" in line and not port_is_free("127.0.0.1", port)


def test_with_running_stack_given_recorded_endpoints_fills_unset_addresses(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ENDPOINTS_FILE).write_bytes(orjson.dumps(
        {"REDIS_URL": "redis://127.0.0.1:7/0", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:8", "api_url": None}))

    found = with_running_stack(RunSettings(TICKWIRE_RUN_DIR=str(tmp_path)))
    mine = with_running_stack(RunSettings(TICKWIRE_RUN_DIR=str(tmp_path), REDIS_URL="redis://mine:1/0"))
    nothing = with_running_stack(RunSettings(TICKWIRE_RUN_DIR=str(tmp_path / "none")))

    assert (found.redis_url, found.kafka_bootstrap_servers) == ("redis://127.0.0.1:7/0", "127.0.0.1:8")
    assert mine.redis_url == "redis://mine:1/0" and mine.kafka_bootstrap_servers == "127.0.0.1:8"
    assert nothing.redis_url is None
