"""Where a running ``tickwire run`` put its servers, so commands in another terminal find them.

``tickwire run`` writes ``$TICKWIRE_RUN_DIR/endpoints.json`` (default ``.tickwire/``) with its pid once
its servers are up, and removes it when it stops. Every command that needs Kafka or Redis and finds
KAFKA_BOOTSTRAP_SERVERS / REDIS_URL unset reads it through :func:`with_running_stack`; a file whose
pid is gone (the run was killed) is reported as stale, never used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

from tickwire.errors import TickwireError
from tickwire.settings import TickwireSettings

S = TypeVar("S", bound=TickwireSettings)

ENDPOINTS_FILE = "endpoints.json"  # in TICKWIRE_RUN_DIR: the servers `tickwire run` chose


class StaleEndpointsError(TickwireError):
    """The endpoints file names a ``tickwire run`` that is no longer running."""


@dataclass(frozen=True)
class RunningStack:
    """What a live ``tickwire run`` recorded: its pid and its servers' addresses."""

    pid: int
    redis_url: str | None
    kafka_bootstrap_servers: str | None
    api_url: str | None


def endpoints_path(settings: TickwireSettings) -> Path:
    """The endpoints file of ``settings.run_dir``."""
    return settings.run_dir / ENDPOINTS_FILE


def write_endpoints(settings: TickwireSettings, env: dict[str, str], api_url: str | None,
                    pid: int | None = None) -> None:
    """Record where the running stack's Redis, broker and API are, with the pid of the run that owns them."""
    endpoints = {"pid": pid or os.getpid(), "REDIS_URL": env.get("REDIS_URL"),
                 "KAFKA_BOOTSTRAP_SERVERS": env.get("KAFKA_BOOTSTRAP_SERVERS"), "api_url": api_url}
    path = endpoints_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(endpoints, option=orjson.OPT_INDENT_2))
    temporary.replace(path)  # a reader never sees half a file


def remove_endpoints(settings: TickwireSettings, pid: int | None = None) -> None:
    """Remove the endpoints file when it is this run's (``pid``, default this process); keep another run's."""
    path = endpoints_path(settings)
    try:
        owner = orjson.loads(path.read_bytes()).get("pid")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return
    if owner == (pid or os.getpid()):
        path.unlink(missing_ok=True)


def pid_is_alive(pid: int) -> bool:
    """True when a process with this pid exists (and, where /proc says, it is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def running_stack(settings: TickwireSettings) -> RunningStack | None:
    """The live ``tickwire run`` of ``settings.run_dir``; None if there is none; raises when its file is stale."""
    path = endpoints_path(settings)
    try:
        found = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StaleEndpointsError(f"{path} is unreadable ({exc}); delete it, or set KAFKA_BOOTSTRAP_SERVERS "
                                  "and REDIS_URL") from None
    pid = found.get("pid") if isinstance(found, dict) else None
    if not isinstance(pid, int) or not pid_is_alive(pid):
        who = f"pid {pid}" if isinstance(pid, int) else "no pid recorded"
        raise StaleEndpointsError(
            f"{path} is stale: the `tickwire run` that wrote it ({who}) is not running; start `make run`, "
            "or set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL, or delete the file")
    return RunningStack(pid, found.get("REDIS_URL"), found.get("KAFKA_BOOTSTRAP_SERVERS"), found.get("api_url"))


def with_running_stack(settings: S) -> S:
    """``settings``, with REDIS_URL / KAFKA_BOOTSTRAP_SERVERS taken from a running ``tickwire run`` when unset.

    Raises :class:`StaleEndpointsError` when an address is needed and the file names a run that is gone.
    """
    if settings.redis_url and settings.kafka_bootstrap_servers:
        return settings
    stack = running_stack(settings)
    if stack is None:
        return settings
    return settings.with_overrides(redis_url=settings.redis_url or stack.redis_url,
                                   kafka_bootstrap_servers=settings.kafka_bootstrap_servers
                                   or stack.kafka_bootstrap_servers)


def not_set_message(variable: str, example: str) -> str:
    """What to say when ``variable`` is unset and no running stack supplied it."""
    return (f"{variable} is not set and no `tickwire run` is running here (no {ENDPOINTS_FILE} in TICKWIRE_RUN_DIR); "
            f"start `make run` in another terminal, or set it (example: {example})")
