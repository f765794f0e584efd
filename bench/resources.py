"""ResourceSampler: CPU time and resident memory of each benchmarked process (psutil), sampled in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time

import psutil

MB = 1024 * 1024


class ResourceSampler:
    """Every ``interval_s``: RSS of each named process; ``cpu_seconds()`` reads user+system CPU time on demand."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.5) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval_s = interval_s
        self.rss: list[tuple[float, dict[str, int]]] = []  # (monotonic time, name -> bytes)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling."""
        self._task = asyncio.create_task(self._run(), name="resource-sampler")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def cpu_seconds(self) -> dict[str, float]:
        """Each process's CPU time so far (children it started included)."""
        out = {}
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                out[name] = times.user + times.system + times.children_user + times.children_system
        return out

    def peak_rss_mb(self, since: float, until: float) -> dict[str, float]:
        """The largest RSS of each process between two monotonic times, in MiB."""
        peaks: dict[str, int] = {}
        for at, sample in self.rss:
            if since <= at <= until:
                for name, rss in sample.items():
                    peaks[name] = max(peaks.get(name, 0), rss)
        return {name: round(rss / MB, 1) for name, rss in peaks.items()}

    def sample_now(self) -> dict[str, int]:
        """Take one RSS sample now (and keep it)."""
        sample = {}
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                sample[name] = process.memory_info().rss
        self.rss.append((time.monotonic(), sample))
        return sample

    async def _run(self) -> None:
        while True:
            self.sample_now()
            await asyncio.sleep(self.interval_s)  # sampling period


def cpu_percent(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """CPU use of each process over ``wall_s`` seconds, in percent of one core."""
    return {name: round(100 * (after[name] - before.get(name, 0.0)) / wall_s, 1) for name in after if wall_s > 0}
