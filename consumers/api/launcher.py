"""Starting ``tickwire api`` as a child of ``tickwire run``, and finding a running stack's servers."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import orjson

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from tickwire.settings import Settings, load_settings

ENDPOINTS_FILE = "endpoints.json"  # in TICKWIRE_RUN_DIR: the servers `tickwire run` chose


def write_endpoints(settings: Settings, env: dict[str, str], api_url: str | None) -> None:
    """Record where the running stack's Redis, broker and API are, for ``tickwire status`` in another terminal."""
    endpoints = {"REDIS_URL": env.get("REDIS_URL"), "KAFKA_BOOTSTRAP_SERVERS": env.get("KAFKA_BOOTSTRAP_SERVERS"),
                 "api_url": api_url}
    (settings.run_dir / ENDPOINTS_FILE).write_bytes(orjson.dumps(endpoints, option=orjson.OPT_INDENT_2))


def with_running_stack(settings: Settings) -> Settings:
    """``settings``, with REDIS_URL / KAFKA_BOOTSTRAP_SERVERS taken from a running ``tickwire run`` when unset."""
    path = settings.run_dir / ENDPOINTS_FILE
    if (settings.redis_url and settings.kafka_bootstrap_servers) or not path.exists():
        return settings
    found = orjson.loads(path.read_bytes())
    redis_url = settings.redis_url or found.get("REDIS_URL")
    bootstrap = settings.kafka_bootstrap_servers or found.get("KAFKA_BOOTSTRAP_SERVERS")
    return load_settings(REDIS_URL=redis_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap)


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def start_api_process(settings: Settings, env: dict[str, str],
                            log_dir: Path) -> tuple[ManagedProcess | None, str]:
    """Start the API on TICKWIRE_API_PORT (0: a free port); returns it and the line to print.

    A port already in use (say, another ``tickwire run``) leaves the API out rather than failing the run.
    """
    host = settings.api_host
    port = settings.api_port or free_port(host)
    if not port_is_free(host, port):
        write_endpoints(settings, env, None)
        return None, f"tickwire: port {port} is in use, so no API/dashboard (set TICKWIRE_API_PORT, 0 = any)"
    api = ManagedProcess("api", [sys.executable, "-m", "tickwire", "api"], log_dir / "api.log",
                         {**env, "TICKWIRE_API_PORT": str(port)})
    await api.start()
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    write_endpoints(settings, env, f"http://{shown}:{port}")
    return api, f"tickwire: dashboard http://{shown}:{port}/  API docs http://{shown}:{port}/docs"
