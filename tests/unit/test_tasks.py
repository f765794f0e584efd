"""cancel_until_done ends tasks that honour a cancel at once and those that lost one (Python 3.11's wait_for)."""

from __future__ import annotations

import asyncio

from tickwire.tasks import cancel_until_done, raise_if_cancelled


async def test_cancel_until_done_given_a_task_that_loses_its_first_cancel_cancels_it_again() -> None:
    """Test that a task that swallows a cancel, as 3.11's wait_for can, is cancelled again and ends, while a
    task that honours the cancel sees exactly one."""
    # Arrange
    seen = {"cooperative": 0, "swallowing": 0}
    started = asyncio.Event()

    async def cooperative() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cooperative"] += 1
            raise

    async def swallowing() -> None:
        started.set()
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen["swallowing"] += 1
                if seen["swallowing"] > 1:
                    raise  # the first one is lost, as when wait_for's awaited send had just finished

    tasks = [asyncio.create_task(cooperative()), asyncio.create_task(swallowing())]
    await started.wait()

    # Act
    await cancel_until_done(tasks, recancel_after_s=0.05)

    # Assert
    assert all(task.cancelled() for task in tasks)
    assert seen == {"cooperative": 1, "swallowing": 2}


async def test_raise_if_cancelled_given_a_cancel_swallowed_on_the_way_stops_the_loop_at_its_next_turn() -> None:
    """Test that a loop whose awaited call swallowed the cancel (as 3.11's wait_for can) stops at its next
    check, and that a loop nobody cancelled goes on."""
    # Arrange
    turns = {"after": 0}
    started = asyncio.Event()

    async def swallowing_call() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # the result won the race: the cancel is lost

    async def loop() -> None:
        while True:
            await swallowing_call()
            turns["after"] += 1
            raise_if_cancelled()
            if turns["after"] > 100:
                return

    task = asyncio.create_task(loop())
    await started.wait()

    # Act
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)

    # Assert
    assert task in done and task.cancelled() and turns["after"] == 1
    raise_if_cancelled()  # this test's own task was not cancelled: nothing raised
