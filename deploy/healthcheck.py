"""Container healthcheck: ``python -m deploy.healthcheck [ROLE [--port N]]`` exits 0 when the service answers.

One image runs every service, so the role is the argument, or else read from PID 1's command line
(the container's ``tickwire <command>``). Each role is probed where it serves, at the ports the
settings give: the API's ``/health`` (503 = unhealthy), the processor's and the ingest's ``/metrics``,
the feed's port. A role without a port to probe (metrics disabled, one-shot commands) is healthy
while its process runs.
"""

from __future__ import annotations

import itertools
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from deploy.settings import RunSettings

TIMEOUT_S = 3.0
ROLES = ("api", "processor", "ingest", "feed")


def role_of(argv: list[str]) -> str | None:
    """The role a command line runs: ``tickwire api``, ``python -m processors worker``, ...; None if unknown."""
    words = [Path(word).name for word in argv]
    if "processors" in words or "processor" in words:
        return "processor"
    for role in ("api", "ingest", "feed"):
        if role in words:
            return role
    return None


def pid1_command() -> list[str]:
    """The command line of PID 1 (the container's main process)."""
    try:
        return [part.decode() for part in Path("/proc/1/cmdline").read_bytes().split(b"\0") if part]
    except OSError:
        return []


def feed_port(argv: list[str]) -> int:
    """The port ``feed serve --port N`` listens on (8765 by default)."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--port":
            return int(value)
    return 8765


def probe(role: str, settings: RunSettings, argv: list[str]) -> str | None:
    """None when the role answers, else why not."""
    if role == "api":
        return _http(f"http://127.0.0.1:{settings.api_port}/health")
    if role == "processor":
        return _http(f"http://127.0.0.1:{settings.processor_metrics_port}/metrics") \
            if settings.processor_metrics_port else None
    if role == "ingest":
        return _http(f"http://127.0.0.1:{settings.ingest_metrics_port}/metrics") \
            if settings.ingest_metrics_port else None
    if role == "feed":
        return _tcp("127.0.0.1", feed_port(argv))
    return f"unknown role {role!r} (one of {', '.join(ROLES)})"


def _http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return None if response.status < 400 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return f"{url}: {exc}"


def _tcp(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc}"


def main(args: list[str]) -> int:
    """Exit code for Docker: 0 healthy, 1 not (the reason on stderr)."""
    command = args or pid1_command()  # natively: ROLE [--port N] for the feed
    role = args[0] if args else role_of(command)
    if role is None:
        return 0  # a one-shot command (create-topics, ...): healthy while it runs
    problem = probe(role, RunSettings(), command)
    if problem:
        print(f"unhealthy {role}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
