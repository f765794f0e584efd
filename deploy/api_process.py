"""Starting ``tickwire api`` as a child of ``tickwire run``."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.settings import RunSettings
from tickwire.endpoints import write_endpoints


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def start_api_process(settings: RunSettings, env: dict[str, str],
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
