"""ManagedProcess: a child process that logs to a file, dies with its parent, and is stopped in full."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec: if the launcher is killed outright, the kernel kills the child too.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """A child in its own process group (so Ctrl-C reaches only the launcher, which stops it in order)."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid, once started."""
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        """True while the child has not exited."""
        return self.proc is not None and self.proc.returncode is None

    async def start(self, stdout: int | None = None) -> None:
        """Start the child; its stderr (and stdout unless piped) goes to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as logfile:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout if stdout is not None else logfile,
                stderr=logfile,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        log.debug("process started", name=self.name, pid=self.proc.pid, log=str(self.log_path))

    async def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the child's group, then SIGKILL whatever is left after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                log.warning("process did not stop in time, killing it", name=self.name, timeout_s=timeout)
        # Also reaps grandchildren left in the group.
        self._signal_group(signal.SIGKILL)
        return await self.proc.wait()

    async def kill(self) -> int | None:
        """SIGKILL the child's group at once, as a crash would, and reap it."""
        if self.proc is None:
            return None
        self._signal_group(signal.SIGKILL)
        return await self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
