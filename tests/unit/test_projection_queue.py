"""ProjectionQueue: writes run in order without holding up the submitter; drain confirms them; a lost write sticks."""

import asyncio

import pytest

from processors.projection_queue import ProjectionQueue


async def test_submit_given_slow_write_returns_before_it_runs_and_drain_waits_for_it() -> None:
    """Test that the agent goes on while Redis works, and drain (before a commit) waits for the write."""
    # Arrange
    queue = ProjectionQueue(max_pending=4)
    release = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await release.wait()
        done.append("slow")

    # Act
    await asyncio.wait_for(queue.submit(slow), timeout=1)
    draining = asyncio.create_task(queue.drain())
    await asyncio.sleep(0)
    # Assert
    assert not draining.done() and done == []
    release.set()
    await asyncio.wait_for(draining, timeout=1)
    assert done == ["slow"]
    await queue.stop()


async def test_submit_given_many_writes_runs_them_in_submission_order() -> None:
    """Test that writes run one at a time in the order submitted (P&L totals move by differences)."""
    # Arrange
    queue = ProjectionQueue(max_pending=2)
    order: list[int] = []
    running = 0

    async def write(n: int) -> None:
        nonlocal running
        running += 1
        assert running == 1
        await asyncio.sleep(0)
        order.append(n)
        running -= 1

    # Act
    for n in range(20):
        await queue.submit(lambda n=n: write(n))  # type: ignore[misc]
    await queue.drain()
    # Assert
    assert order == list(range(20))
    await queue.stop()


async def test_submit_given_full_queue_waits_for_room() -> None:
    """Test that submit applies back-pressure once max_pending writes are waiting."""
    # Arrange
    queue = ProjectionQueue(max_pending=1)
    started, release = asyncio.Event(), asyncio.Event()

    async def blocked() -> None:
        started.set()
        await release.wait()

    async def nothing() -> None:
        return None

    await queue.submit(blocked)
    await asyncio.wait_for(started.wait(), timeout=1)  # the runner holds it
    await asyncio.wait_for(queue.submit(nothing), timeout=1)  # waits in the queue
    # Act
    third = asyncio.create_task(queue.submit(nothing))
    await asyncio.sleep(0)
    # Assert
    assert not third.done()
    release.set()
    await asyncio.wait_for(third, timeout=1)
    await queue.stop()


async def test_submit_and_drain_given_failed_write_raise_it_every_time() -> None:
    """Test that a write lost for good fails the agent and every later commit, never silently skipped."""
    # Arrange
    queue = ProjectionQueue()

    async def broken() -> None:
        raise RuntimeError("lua said no")

    async def fine() -> None:
        return None

    await queue.submit(broken)
    # Act / Assert
    with pytest.raises(RuntimeError, match="lua said no"):
        await queue.drain()
    with pytest.raises(RuntimeError, match="lua said no"):
        await queue.submit(fine)
    with pytest.raises(RuntimeError, match="lua said no"):
        await queue.drain()
    with pytest.raises(RuntimeError, match="lua said no"):
        await queue.stop()
