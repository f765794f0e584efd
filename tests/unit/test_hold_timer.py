"""HoldTimer: releases while something is held, and does not tick while nothing is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tickwire.runtime.timers import HoldTimer


class Held:
    """A stand-in for the cadence or the conflator: held items, released one per tick."""

    def __init__(self) -> None:
        self.items = 0
        self.checks = 0
        self.released: list[int] = []
        self.changed = asyncio.Event()

    def holding(self) -> bool:
        self.checks += 1
        self.changed.set()
        return self.items > 0

    async def release(self) -> None:
        self.released.append(self.items)
        self.items -= 1
        self.changed.set()

    async def until(self, condition: object, timeout_s: float = 2.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running(timer: HoldTimer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(timer.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_given_items_held_and_a_wake_it_releases_until_none_is_left_then_waits() -> None:
    held = Held()
    timer = HoldTimer(0.001, held.holding, held.release)
    async with running(timer):
        await held.until(lambda: held.checks == 1)  # nothing held: checked once, then waiting
        held.items = 3
        timer.wake()
        await held.until(lambda: held.items == 0 and held.checks >= 5)
        assert held.released == [3, 2, 1]
        checks = held.checks
        with pytest.raises(TimeoutError):  # nothing held: no tick, so no further check within 50 intervals
            await held.until(lambda: held.checks > checks, timeout_s=0.05)
        assert held.released == [3, 2, 1]


async def test_given_nothing_held_a_wake_checks_once_and_releases_nothing() -> None:
    held = Held()
    timer = HoldTimer(0.001, held.holding, held.release)
    async with running(timer):
        await held.until(lambda: held.checks == 1)
        timer.wake()
        await held.until(lambda: held.checks == 2)
        with pytest.raises(TimeoutError):
            await held.until(lambda: held.checks > 2, timeout_s=0.05)
    assert held.released == []
