"""Carries out a soak's actions (bench.day_plan) on the stack as their time comes, and keeps the faults' windows.

A fault's window runs from its injection until the feed saw the ingest subscribed again, and ``FAULT_GRACE_S``
more (the repair of its gap and the catch-up after it); the rows and the ``/health`` samples within a window are
labelled with the fault, and the soak's health check leaves them out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import feed_faults
from bench.day_plan import FAULT, POSITIONS, RATE, Action
from bench.position_changes import PositionChanges
from bench.stack import BenchStack

FAULT_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One injected fault: wall-clock ns from its injection to its end (None: not over yet)."""

    fault: str
    began_ns: int
    ended_ns: int | None = None
    recovered: bool | None = None
    detail: str = ""

    def covers(self, start_ns: int, end_ns: int, now_ns: int) -> bool:
        """Whether ``[start_ns, end_ns)`` overlaps the fault or its grace after it."""
        until = (self.ended_ns if self.ended_ns is not None else now_ns) + int(FAULT_GRACE_S * 1e9)
        return start_ns < until and self.began_ns < end_ns


class SoakDriver:
    """``await run_due(elapsed_s)`` does every action due by then; ``next_at`` says when the next one is."""

    def __init__(self, stack: BenchStack, actions: list[Action], changes: PositionChanges | None) -> None:
        self.stack = stack
        self.pending = list(actions)
        self.changes = changes
        self.injected: list[tuple[str, int]] = []  # (fault, wall-clock ns it was sent)

    @property
    def next_at(self) -> float | None:
        """Seconds into the soak of the next action (None: none left)."""
        return self.pending[0].at_s if self.pending else None

    async def run_due(self, elapsed_s: float) -> None:
        """Carry out the actions due at ``elapsed_s`` seconds into the soak, in order."""
        while self.pending and self.pending[0].at_s <= elapsed_s:
            action = self.pending.pop(0)
            if action.kind == RATE:
                await self.stack.set_rate(float(action.arg))
            elif action.kind == POSITIONS and self.changes is not None:
                await self.changes.publish()
            elif action.kind == FAULT:
                self.injected.append((str(action.arg), time.time_ns()))
                await self.stack.inject_fault(str(action.arg))
                print(f"  soak: injected a feed {action.arg} at {elapsed_s:.0f}s", flush=True)

    async def windows(self) -> list[FaultWindow]:
        """Every fault injected so far, with its end once the feed has recorded it."""
        assert self.stack.redis is not None
        ended = await feed_faults.recorded(self.stack.redis)
        out = []
        for index, (fault, sent_ns) in enumerate(self.injected):
            # The feed records them in the order they end; faults are far apart, so that is the order injected.
            done = ended[index] if index < len(ended) else None
            out.append(FaultWindow(fault, sent_ns, done.ended_ns if done else None, done.recovered if done else None,
                                   done.detail if done else ""))
        return out
