"""What a soak does when: the feed's rate at each phase of its day, position changes, feed faults.

Pure: :func:`soak_actions` lists the actions in time order and :mod:`bench.soak` carries them out as their
time comes. :func:`history_for_mute` sizes the feed's REST history so that the ingest can repair a mute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.day_shape import DayShape

RATE, POSITIONS, FAULT = "rate", "positions", "fault"
# A mute lasts the ingest's mute_after, its reconnect (5 s base, jittered) and the gap's settling (5 s) before
# the repair reads the history; this much more covers the rest, and the quotes' Poisson spread.
MUTE_MARGIN_S = 60.0
POISSON_MARGIN = 1.25


@dataclass(frozen=True, slots=True)
class Action:
    """At ``at_s`` seconds into the soak: set the feed's ``rate`` (quotes/s), publish position changes, or inject
    the feed ``fault`` named by ``arg``."""

    at_s: float
    kind: str
    arg: float | str = ""


def soak_actions(shape: DayShape, position_every_s: float = 0.0,
                 faults: tuple[tuple[str, float], ...] = ()) -> list[Action]:
    """Every action of a soak following ``shape``, in time order (a rate change first when two coincide)."""
    actions = [Action(p.start_s, RATE, p.rate) for p in shape.phases]
    if position_every_s > 0:
        count = math.ceil(shape.seconds / position_every_s)
        actions += [Action(k * position_every_s, POSITIONS) for k in range(1, count) if k * position_every_s
                    < shape.seconds]
    actions += [Action(share * shape.seconds, FAULT, name) for name, share in faults]
    order = {RATE: 0, POSITIONS: 1, FAULT: 2}
    return sorted(actions, key=lambda a: (a.at_s, order[a.kind]))


def history_for_mute(shape: DayShape, symbols: int, mute_after_s: float) -> int:
    """Quotes per symbol the feed must keep so a mute's quotes are still there when the ingest repairs the gap:
    a symbol's share of the day's peak rate over the mute and its margin."""
    peak = max(p.rate for p in shape.phases)
    return math.ceil(peak / symbols * (mute_after_s + MUTE_MARGIN_S) * POISSON_MARGIN)
