"""EmbeddedServer: the start-probe-stop life cycle shared by the servers tickwire starts for you."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import structlog

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import wait_until_ready

log = structlog.get_logger(__name__)


class EmbeddedServer:
    """A child server process that is ready once :meth:`probe` succeeds. Use as an async context."""

    process: ManagedProcess
    startup_timeout_s: float = 30.0

    @property
    def address(self) -> str:
        """What clients connect to (a bootstrap address or a URL)."""
        raise NotImplementedError

    async def probe(self) -> None:
        """Return when the server answers; raise otherwise."""
        raise NotImplementedError

    async def start(self, timeout: float | None = None) -> Self:
        """Start the process and wait until it answers."""
        await self.process.start()
        await wait_until_ready(self.process.name, self.probe, timeout or self.startup_timeout_s, self.process)
        log.info(f"embedded {self.process.name} ready", address=self.address, pid=self.process.pid)
        return self

    async def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a bounded wait)."""
        await self.process.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
