"""Readiness probing: retry a probe until it succeeds or a deadline passes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

from deploy.embedded.process import ManagedProcess
from tickwire.errors import TickwireError

PROBE_INTERVAL_S = 0.1


class NotReadyError(TickwireError, RuntimeError):
    """A server did not become ready before its deadline (or exited while starting)."""


async def wait_until_ready(
    name: str, probe: Callable[[], Awaitable[object]], timeout: float, process: ManagedProcess | None = None
) -> None:
    """Call ``probe`` until it returns without raising; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if process is not None and not process.running:
            raise NotReadyError(f"{name} exited while starting (see {process.log_path}):\n{process.tail()}")
        try:
            await probe()
            return
        except Exception as exc:
            last_error = exc
        await asyncio.sleep(PROBE_INTERVAL_S)  # probe interval; readiness itself is decided by the probe
    raise NotReadyError(f"{name} not ready after {timeout:.0f}s: {last_error!r}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
