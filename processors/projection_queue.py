"""ProjectionQueue: Redis projections written by a task of their own, in order, drained before each commit.

An agent that awaited each batch's Redis round trips sat idle while Redis ran the batch's Lua steps, and
the next batch waited behind them. Agents now hand each batch's writes to this queue and go on with the
next batch; one task runs the writes in the order they were submitted (P&L totals move by exact
differences, so order matters). ``drain`` is chained to Faust's flush before every offset commit (see
processors/clients.py), so an offset is committed only once Redis has every write queued before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Write = Callable[[], Awaitable[object]]


class ProjectionQueue:
    """FIFO of pending Redis writes run by one background task; ``submit`` waits only when it is full.

    A write retries on its own while Redis is away (the projectors do). One that fails for good is raised
    by every later ``submit`` and ``drain``: the agent fails as it did when it awaited the write, and no
    offset after the lost write is ever committed.
    """

    def __init__(self, max_pending: int = 4) -> None:
        self._queue: asyncio.Queue[Write] = asyncio.Queue(max_pending)
        self._runner: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def submit(self, write: Write) -> None:
        """Queue ``write`` (a coroutine function) after every write submitted before it."""
        self._raise_failure()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="projection-queue")
        await self._queue.put(write)

    async def drain(self) -> None:
        """Wait until every write submitted so far has run; raise if one of them failed for good."""
        if self._runner is not None and not self._runner.done():
            await self._queue.join()
        self._raise_failure()

    async def stop(self) -> None:
        """Run what is queued, then stop the task."""
        try:
            await self.drain()
        finally:
            if self._runner is not None:
                self._runner.cancel()
                await asyncio.gather(self._runner, return_exceptions=True)
                self._runner = None

    async def _run(self) -> None:
        while True:
            write = await self._queue.get()
            try:
                await write()
            except Exception as exc:  # raised by the agent's next submit and by every commit from now on
                self._failure = self._failure or exc
            finally:
                self._queue.task_done()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
