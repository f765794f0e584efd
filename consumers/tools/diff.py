"""``tickwire diff``: compare two replay runs, or a run and the live state, symbol by symbol.

A run stopped at its cut (the end offsets in its manifest); the live pipeline did not. When live is one
side, a symbol that differs is checked against the source topic past the run's cut: records of it there
mean the live side moved on, and the report says by how much instead of calling it a difference.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from consumers.live_cut import TopicCursor
from consumers.tools.run_manifest import LIVE, ReplayRun, load_run
from consumers.tools.run_state import SECTIONS, StateSection, SymbolState, read_state, symbols_in
from schemas.topics import LIVE_NAMESPACE, replay_namespace
from tickwire.errors import TickwireError

ABSENT = "(none)"


class DiffError(TickwireError, ValueError):
    """The comparison cannot be made (unknown run, nothing to compare)."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: ``live`` or a finished run."""

    label: str
    namespace: str
    run: ReplayRun | None


@dataclass(frozen=True)
class Difference:
    """One field of one symbol that differs: ``field`` is ``section.name`` (e.g. ``price.mid``)."""

    symbol: str
    field: str
    left: str
    right: str


@dataclass(frozen=True)
class DiffReport:
    """The outcome: which symbols were compared and every difference, in symbol order."""

    left: Side
    right: Side
    symbols: list[str]
    differences: list[Difference]
    live_moved: dict[str, LiveMove] = field(default_factory=dict)  # symbol -> how far live went past the cut

    @property
    def differing_symbols(self) -> list[str]:
        """Symbols with at least one difference."""
        return sorted({d.symbol for d in self.differences})

    @property
    def real_differences(self) -> list[Difference]:
        """Differences of symbols the live side did not move on since the run's cut."""
        return [d for d in self.differences if d.symbol not in self.live_moved]


@dataclass(frozen=True)
class LiveMove:
    """Records of one symbol in the run's source topic past the run's cut (partition -> count after offset)."""

    symbol: str
    topic: str
    after_cut: dict[int, tuple[int, int]]  # partition -> (the run's end offset, records of the symbol after it)

    @property
    def records(self) -> int:
        """Records of the symbol past the cut, in all partitions."""
        return sum(n for _, n in self.after_cut.values())

    def __str__(self) -> str:
        where = ", ".join(f"{self.topic}[{p}] after offset {end}: {n}"
                          for p, (end, n) in sorted(self.after_cut.items()))
        return f"{self.symbol}: live moved past the run's cut by {self.records} record(s) ({where})"


async def side(redis: Redis, label: str) -> Side:
    """``live``, or a run id whose manifest exists (DiffError otherwise)."""
    if label == LIVE:
        return Side(LIVE, LIVE_NAMESPACE, None)
    try:
        run = await load_run(redis, label)
    except ValueError as exc:
        raise DiffError(str(exc)) from None
    if run is None:
        raise DiffError(f"no finished replay run {label!r} in this Redis (expired, still running, or never run)")
    return Side(label, replay_namespace(label), run)


async def diff(
    redis: Redis, left_label: str, right_label: str, symbols: list[str] | None = None,
    sections: list[StateSection] = SECTIONS, bootstrap: str | None = None, settle_s: float = 0.0,
    **security: Any,
) -> DiffReport:
    """Compare every section of every symbol: the symbols given, else those the run(s) processed.

    With ``live`` on one side and ``bootstrap`` given, differing symbols are checked for records past the
    run's cut (:attr:`DiffReport.live_moved`); while real differences remain, compare again for up to
    ``settle_s`` seconds (the live pipeline may still be catching up to the cut).
    """
    deadline = time.monotonic() + settle_s
    while True:
        report = await _diff_once(redis, left_label, right_label, symbols, sections)
        if bootstrap and report.differences:
            run = report.left.run or report.right.run
            if run is not None and LIVE in (report.left.label, report.right.label):
                moved = await moved_past_cut(bootstrap, run, report.differing_symbols, **security)
                report = replace(report, live_moved=moved)
        with_live = LIVE in (report.left.label, report.right.label)  # two runs never change: no point waiting
        if not report.real_differences or not with_live or time.monotonic() >= deadline:
            return report
        await asyncio.sleep(SETTLE_POLL_S)  # poll interval while live catches up; the deadline bounds it


SETTLE_POLL_S = 0.2


async def moved_past_cut(bootstrap: str, run: ReplayRun, symbols: list[str], **security: Any) -> dict[str, LiveMove]:
    """symbol -> its records in the run's source topic after the run's end offsets (only symbols that have some)."""
    cursor = TopicCursor(bootstrap, run.source_topic, None, {p.partition: p.end for p in run.partitions}, **security)
    await cursor.start()
    try:
        records = await cursor.read_to_end()
    finally:
        await cursor.stop()
    wanted = set(symbols)
    counts: dict[str, dict[int, int]] = {}
    for record in records:
        symbol = record.key.decode(errors="replace").rpartition(":")[2] if record.key else ""
        if symbol in wanted:
            per_partition = counts.setdefault(symbol, {})
            per_partition[record.partition] = per_partition.get(record.partition, 0) + 1
    ends = {p.partition: p.end for p in run.partitions}
    return {symbol: LiveMove(symbol, run.source_topic, {p: (ends[p], n) for p, n in sorted(parts.items())})
            for symbol, parts in sorted(counts.items())}


async def _diff_once(
    redis: Redis, left_label: str, right_label: str, symbols: list[str] | None, sections: list[StateSection],
) -> DiffReport:
    left, right = await side(redis, left_label), await side(redis, right_label)
    if left.run is None and right.run is None:
        raise DiffError("compare a run with live, or two runs: live vs live is always equal")
    if symbols:
        chosen = sorted(set(symbols))
    else:
        runs = [s.run for s in (left, right) if s.run is not None]
        found = set().union(*(set(r.symbols) for r in runs))
        for s in (left, right):
            if s.run is not None and not s.run.symbols:
                found |= await symbols_in(redis, s.namespace, sections)
        chosen = sorted(found)
    left_state = await read_state(redis, left.namespace, chosen, sections)
    right_state = await read_state(redis, right.namespace, chosen, sections)
    differences = [
        difference
        for symbol in chosen
        for section in sections
        for difference in compare_section(symbol, section.name, left_state[symbol].get(section.name, {}),
                                          right_state[symbol].get(section.name, {}))
    ]
    return DiffReport(left, right, chosen, differences)


def compare_section(symbol: str, name: str, left: SymbolState, right: SymbolState) -> list[Difference]:
    """The fields of one section that differ; a section absent on one side is one difference, not many."""
    left_present = any(v is not None for v in left.values())
    right_present = any(v is not None for v in right.values())
    if left_present != right_present:
        return [Difference(symbol, name, _summary(left), _summary(right))]
    return [
        Difference(symbol, f"{name}.{field}", _text(left.get(field)), _text(right.get(field)))
        for field in sorted(set(left) | set(right), key=lambda f: (_order(left, right, f), f))
        if _text(left.get(field)) != _text(right.get(field))
    ]


def _order(left: SymbolState, right: SymbolState, field: str) -> int:
    keys = list(left) + [k for k in right if k not in left]
    return keys.index(field)


def _text(value: str | None) -> str:
    return ABSENT if value is None else value


def _summary(state: SymbolState) -> str:
    present = {k: v for k, v in state.items() if v is not None}
    if not present:
        return ABSENT
    return ", ".join(f"{k}={v}" for k, v in list(present.items())[:3])
