"""StreamProcess: one process running consumer-group members and their sidecars until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from schemas.topics import TopicSpec
from tickwire.errors import TickwireError
from tickwire.logging import quiet_library_logs
from tickwire.runtime.member import BatchConsumer
from tickwire.runtime.timers import Sidecar, run_until
from tickwire.settings import TickwireSettings
from tickwire.topic_admin import ensure_topics_of

log = structlog.get_logger(__name__)


@dataclass
class Member:
    """One stage in the process: its consumer loop and the tasks beside it (timers, progress)."""

    name: str
    group: str
    batch: BatchConsumer
    sidecars: list[Sidecar] = field(default_factory=list)


@dataclass
class StreamProcess:
    """Creates missing topics, runs every member until ``stop``, then commits, flushes and closes its clients."""

    settings: TickwireSettings
    members: list[Member]
    topics: Sequence[TopicSpec]  # created if missing before any member starts
    opening: list[Callable[[], Awaitable[object]]] = field(default_factory=list)  # in order, before the members
    closing: list[Callable[[], Awaitable[object]]] = field(default_factory=list)  # in order, after the members

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; every member commits what it finished before its client closes."""
        try:
            with quiet_library_logs("aiokafka"):  # a refused connection is one error line (the CLI's), not three
                await ensure_topics_of(self.settings, self.topics)
                for open_ in self.opening:
                    await open_()
                for member in self.members:
                    await member.batch.consumer.start()
            try:
                async with asyncio.TaskGroup() as tasks:
                    for member in self.members:
                        tasks.create_task(member.batch.run(stop), name=f"{member.name} consumer")
                        for sidecar in member.sidecars:
                            tasks.create_task(run_until(stop, sidecar), name=f"{member.name} {_name(sidecar)}")
                    log.info("processor running", stages={m.name: m.group for m in self.members})
            except* TickwireError as group:  # one line for the user (StageFenced, RestoreError), not a group
                raise group.exceptions[0] from None
        finally:
            for member in self.members:  # started or not: each owns a client to close
                with contextlib.suppress(Exception):
                    await member.batch.consumer.stop()
            for close in self.closing:
                await close()


def _name(sidecar: Sidecar) -> str:
    return getattr(sidecar, "__name__", type(sidecar).__name__)
