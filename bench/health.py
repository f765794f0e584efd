"""HealthSampler: the API's ``/health`` status every few seconds during a soak, as a load balancer would see it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

REQUEST_TIMEOUT_S = 5.0
UNREACHABLE = "unreachable"  # no answer at all (the API down or too slow to answer)


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One answer of ``/health``: wall-clock ns, its status and the problems it named."""

    at_ns: int
    status: str  # healthy | degraded | unhealthy | unreachable
    problems: tuple[str, ...] = ()


class HealthSampler:
    """``start()`` polls ``url`` every ``every_s`` until ``stop()``; ``samples`` keeps every answer."""

    def __init__(self, url: str, every_s: float = 5.0) -> None:
        self.url = url
        self.every_s = every_s
        self.samples: list[HealthSample] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin polling."""
        self._task = asyncio.create_task(self._run(), name="health-sampler")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start_ns: int, end_ns: int) -> list[HealthSample]:
        """The samples taken in ``[start_ns, end_ns)``."""
        return [s for s in self.samples if start_ns <= s.at_ns < end_ns]

    async def sample(self, http: aiohttp.ClientSession) -> HealthSample:
        """Ask once."""
        at = time.time_ns()
        try:
            async with http.get(self.url) as response:  # 503 when unhealthy: the body says so too
                body = await response.json()
            return HealthSample(at, str(body.get("status", UNREACHABLE)), tuple(body.get("problems") or ()))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return HealthSample(at, UNREACHABLE, (f"{type(exc).__name__}: {exc}",))

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                self.samples.append(await self.sample(http))
                await asyncio.sleep(self.every_s)  # sampling period


def status_counts(samples: list[HealthSample]) -> dict[str, int]:
    """status -> how many samples had it."""
    return dict(Counter(s.status for s in samples))
