"""Timers beside a stage's consumer loop: :class:`HoldTimer` and :func:`run_until`.

A HoldTimer ticks only while something is held back, and sleeps untouched otherwise. The price stage holds
marks (the mark cadence) and the P&L stage holds revaluations and unsubscribes (conflation, the grace
period). Usually nothing is held, and timers ticking anyway woke the process up to 60 times a second for
nothing (on the benchmark VM a wake-up from idle costs 0.2-1.8 ms of CPU).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tickwire.tasks import cancel_until_done

Sidecar = Callable[[asyncio.Event], Awaitable[None]]  # a task beside a stage's loop, told to stop by the event


async def run_until(stop: asyncio.Event, sidecar: Sidecar) -> None:
    """Run a sidecar until ``stop`` (cancelled then, if it is still waiting); its own error is raised."""
    task = asyncio.ensure_future(sidecar(stop))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    await cancel_until_done([task, stopping])
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


class HoldTimer:
    """Calls ``release`` every ``interval_s`` while ``holding()`` is true; :meth:`wake` after holding anything."""

    def __init__(self, interval_s: float, holding: Callable[[], bool],
                 release: Callable[[], Awaitable[None]]) -> None:
        self.interval_s = interval_s
        self.holding = holding
        self.release = release
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Something may be held now: tick until it is released."""
        self._woken.set()

    async def run(self) -> None:
        """Tick while something is held; otherwise wait for :meth:`wake` (cancel it to stop)."""
        while True:
            if not self.holding():
                self._woken.clear()  # no await between the check and the wait: a wake() cannot slip between
                await self._woken.wait()
                continue
            await asyncio.sleep(self.interval_s)  # a held item is released at most this late
            await self.release()

    async def run_sidecar(self, stop: asyncio.Event) -> None:
        """:meth:`run` as a sidecar (``stop`` cancels it)."""
        await self.run()
