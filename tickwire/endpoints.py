"""Where a running ``tickwire run`` put its servers, so commands in another terminal find them."""

from __future__ import annotations

from typing import TypeVar

import orjson

from tickwire.settings import TickwireSettings

S = TypeVar("S", bound=TickwireSettings)

ENDPOINTS_FILE = "endpoints.json"  # in TICKWIRE_RUN_DIR: the servers `tickwire run` chose


def write_endpoints(settings: TickwireSettings, env: dict[str, str], api_url: str | None) -> None:
    """Record where the running stack's Redis, broker and API are, for ``tickwire status`` in another terminal."""
    endpoints = {"REDIS_URL": env.get("REDIS_URL"), "KAFKA_BOOTSTRAP_SERVERS": env.get("KAFKA_BOOTSTRAP_SERVERS"),
                 "api_url": api_url}
    (settings.run_dir / ENDPOINTS_FILE).write_bytes(orjson.dumps(endpoints, option=orjson.OPT_INDENT_2))


def with_running_stack(settings: S) -> S:
    """``settings``, with REDIS_URL / KAFKA_BOOTSTRAP_SERVERS taken from a running ``tickwire run`` when unset."""
    path = settings.run_dir / ENDPOINTS_FILE
    if (settings.redis_url and settings.kafka_bootstrap_servers) or not path.exists():
        return settings
    found = orjson.loads(path.read_bytes())
    redis_url = settings.redis_url or found.get("REDIS_URL")
    bootstrap = settings.kafka_bootstrap_servers or found.get("KAFKA_BOOTSTRAP_SERVERS")
    return settings.with_overrides(redis_url=redis_url, kafka_bootstrap_servers=bootstrap)
