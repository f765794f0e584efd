"""TopicKeeper: keeps tickwire's topics on the broker, and notices when the broker lost them all.

The embedded broker keeps everything in memory: a restart loses every topic, committed offset and group, and
clients that reconnect auto-create bare topics as they go. Commits to a group recreated that way can fail for
good (seen on Tansu), so the keeper creates the missing topics itself, with their partitions and cleanup
policy. Its owner's marker topic (:func:`schemas.topics.topics_marker`), which no client touches, tells "the
broker lost everything" (marker gone) from a first start. On Redpanda it finds nothing to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from schemas.timestamps import now_ns
from schemas.topics import TopicSpec, topics_marker
from tickwire.logging import quiet_library_logs
from tickwire.topic_admin import ensure_topics

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 2.0  # one metadata request per check: cheap; bounds how long a lost topic stays bare
CHECK_TIMEOUT_S = 10.0  # a broker that is down fails the check, which is retried


class TopicKeeper:
    """``ensure()`` at start, then ``watch(stop)``: recreates missing topics and calls ``on_lost(since_ns)`` when
    the broker lost them all (the marker is gone); ``since_ns`` is when a check last found them."""

    def __init__(self, bootstrap: str, partitions: int, specs: Sequence[TopicSpec], owner: str, *,
                 replication: int = 1, on_lost: Callable[[int], Awaitable[None] | None] = lambda since_ns: None,
                 interval_s: float = CHECK_INTERVAL_S, **client_options: Any) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.marker = topics_marker(owner)
        self.specs = (*specs, self.marker)
        self.replication = replication
        self.on_lost = on_lost
        self.interval_s = interval_s
        self.client_options = client_options
        self.losses = 0
        self.seen_ns = now_ns()  # when a check (or the start) last found the marker

    async def ensure(self) -> list[str]:
        """Create whatever is missing; returns the names created."""
        return await ensure_topics(self.bootstrap, self.partitions, self.specs, self.replication,
                                   **self.client_options)

    async def check(self) -> bool:
        """Recreate missing topics now; True if the broker had lost them all (then ``on_lost`` ran)."""
        created = await self.ensure()
        if self.marker.name not in created:
            self.seen_ns = now_ns()
            return False
        self.losses += 1
        log.warning("the broker lost tickwire's topics (an embedded broker restarts empty: its data is gone); "
                    "recreated them. For long sessions run on Redpanda (docker-compose)",
                    recreated=len(created))
        outcome = self.on_lost(self.seen_ns)
        self.seen_ns = now_ns()
        if outcome is not None:
            await outcome
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Check every ``interval_s`` until ``stop``; an unreachable broker is retried at the next check."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
                return
            except TimeoutError:
                pass
            try:
                with quiet_library_logs("aiokafka"):  # an outage is reported by the producers and consumers
                    await asyncio.wait_for(self.check(), CHECK_TIMEOUT_S)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("topic check failed; retrying", error=f"{type(exc).__name__}: {exc}")
