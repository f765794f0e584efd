"""Whether prices keep up: the price stage's per-partition progress, judged against the clock.

Stale means "quotes are waiting and none was processed for a while" (or "the stage stopped reporting"),
whatever the cause: a dead or wedged processor, a broker that does not answer, Redis trouble in the stage.
``/health`` turns it unhealthy while the ingest is publishing, degraded otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.events import PartitionProgress
from schemas.timestamps import NS_PER_SECOND, parse_ns
from schemas.topics import QUOTES_RAW

STALE_AFTER_S = 15.0  # reports come every second; 15 s without progress is a stall (reported within 30 s)


@dataclass(frozen=True, slots=True)
class Freshness:
    """``stale``: prices stopped (``detail`` says where), or they advance."""

    stale: bool
    detail: str


def price_freshness(progress: Mapping[int, PartitionProgress], now_ns: int,
                    stale_after_s: float = STALE_AFTER_S) -> Freshness:
    """Judge every partition's latest report; no report at all is "not known", not a stall."""
    if not progress:
        return Freshness(False, "no price stage has reported progress yet")
    stalls = []
    for partition, entry in sorted(progress.items()):
        silent_s = (now_ns - parse_ns(entry.updated_at)) / NS_PER_SECOND
        idle_s = (now_ns - parse_ns(entry.advanced_at)) / NS_PER_SECOND
        waiting = (entry.highwater or 0) - entry.offset
        if silent_s > stale_after_s:
            stalls.append(f"{QUOTES_RAW.name}[{partition}]: the price stage stopped reporting {silent_s:.0f}s ago")
        elif waiting > 0 and idle_s > stale_after_s:
            stalls.append(f"{QUOTES_RAW.name}[{partition}]: {waiting} quotes waiting, none processed for {idle_s:.0f}s")
    if stalls:
        return Freshness(True, "prices stopped: " + "; ".join(stalls))
    return Freshness(False, f"advancing on {len(progress)} partitions")
