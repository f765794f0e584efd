"""Stopping tasks even when a library loses a cancellation: cancel_until_done (the owner's side) and
raise_if_cancelled (the loop's side)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

__all__ = ["RECANCEL_AFTER_S", "cancel_until_done", "raise_if_cancelled"]

log = structlog.get_logger(__name__)

RECANCEL_AFTER_S = 2.0  # long enough for a task's own cleanup (a socket closed, a lease released) to finish


async def cancel_until_done(tasks: Iterable[asyncio.Task[Any]], recancel_after_s: float = RECANCEL_AFTER_S) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again those still running after
    ``recancel_after_s``.

    On Python 3.11 a cancellation can be lost: ``asyncio.wait_for`` returns the awaited result instead of
    raising when that result arrived in the same loop turn as the cancel (bpo-42130, fixed in 3.12), and
    redis-py sends every command through it when a socket timeout is set (5 s by default in the redis-py we pin).
    A task that lost its cancel runs on; a second cancel ends it.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_after_s)
        if pending:
            log.warning("still running after a cancel (lost on the way); cancelling again",
                        tasks=sorted(task.get_name() for task in pending))


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if this task was asked to stop and the request got lost (see
    :func:`cancel_until_done`: Python 3.11's ``wait_for`` under redis-py); a loop calls it after the library
    calls it repeats, so a reader that lost its cancel stops at its next turn instead of running on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
