"""``tickwire diff``: compare two replay runs, or a run and the live state, symbol by symbol and position by position.

What is compared is what the runs' stages leave: the price stage's latest price and counts per symbol, the P&L
stage's valuation per position (``{account}:{symbol}``) and total per account. A run stopped at its cut (the
end offsets in its manifest); the live pipeline did not. When live is one side, what differs is checked
against the source topics past the run's cut: records of its symbol there mean the live side moved on, and
the report says by how much instead of calling it a difference.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from consumers.live_cut import TopicCursor
from consumers.tools.run_manifest import LIVE, ReplayRun, load_run
from consumers.tools.run_state import (
    SECTIONS,
    SECTIONS_BY_STAGE,
    StateSection,
    SymbolState,
    pnl_accounts,
    read_pnl,
    read_state,
    symbols_in,
)
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
    """One field of one subject that differs: ``field`` is ``section.name`` (e.g. ``price.mid``). The subject
    (``symbol``) is a symbol, a position (``{account}:{symbol}``) or an account (its ``pnl_total``)."""

    symbol: str
    field: str
    left: str
    right: str


@dataclass(frozen=True)
class DiffReport:
    """The outcome: which symbols, positions and accounts were compared and every difference, in that order."""

    left: Side
    right: Side
    symbols: list[str]
    differences: list[Difference]
    live_moved: dict[str, LiveMove] = field(default_factory=dict)  # subject -> how far live went past the cut
    positions: list[str] = field(default_factory=list)  # {account}:{symbol} compared (runs of the P&L stage)
    accounts: list[str] = field(default_factory=list)

    @property
    def differing_symbols(self) -> list[str]:
        """Subjects (symbols, positions, accounts) with at least one difference."""
        return sorted({d.symbol for d in self.differences})

    def symbols_behind(self, subject: str) -> set[str]:
        """The symbols whose records a subject's state follows: its own, or an account's differing positions'."""
        if subject in self.accounts:
            return {d.symbol.rpartition(":")[2] for d in self.differences if d.symbol.startswith(subject + ":")}
        return {subject.rpartition(":")[2]}

    @property
    def real_differences(self) -> list[Difference]:
        """Differences of symbols the live side did not move on since the run's cut."""
        return [d for d in self.differences if d.symbol not in self.live_moved]


@dataclass(frozen=True)
class LiveMove:
    """Records of one subject's symbol(s) in the run's source topics past the run's cut (partition -> count after
    offset), in ``topic`` and, for runs of several topics, ``elsewhere``."""

    symbol: str
    topic: str
    after_cut: dict[int, tuple[int, int]]  # partition -> (the run's end offset, records of the symbol after it)
    elsewhere: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)  # other topics, alike

    @property
    def records(self) -> int:
        """Records of the symbol past the cut, in all partitions."""
        return sum(n for part in (self.after_cut, *self.elsewhere.values()) for _, n in part.values())

    def __str__(self) -> str:
        where = ", ".join(f"{topic}[{p}] after offset {end}: {n}"
                          for topic, part in ((self.topic, self.after_cut), *self.elsewhere.items())
                          for p, (end, n) in sorted(part.items()))
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
                behind = {subject: report.symbols_behind(subject) for subject in report.differing_symbols}
                by_symbol = await moved_past_cut(bootstrap, run, sorted(set().union(*behind.values())), **security)
                report = replace(report, live_moved=_moves_of(behind, by_symbol))
        with_live = LIVE in (report.left.label, report.right.label)  # two runs never change: no point waiting
        if not report.real_differences or not with_live or time.monotonic() >= deadline:
            return report
        await asyncio.sleep(SETTLE_POLL_S)  # poll interval while live catches up; the deadline bounds it


SETTLE_POLL_S = 0.2


async def moved_past_cut(bootstrap: str, run: ReplayRun, symbols: list[str], **security: Any) -> dict[str, LiveMove]:
    """symbol -> its records in the run's source topics after the run's end offsets (only symbols that have some)."""
    wanted = set(symbols)
    counts: dict[str, dict[str, dict[int, int]]] = {}  # symbol -> topic -> partition -> records
    ends: dict[str, dict[int, int]] = {}
    for topic in run.topics if wanted else []:
        ends[topic] = {p.partition: p.end for p in run.spans(topic)}
        cursor = TopicCursor(bootstrap, topic, None, ends[topic], **security)
        await cursor.start()
        try:
            records = await cursor.read_to_end()
        finally:
            await cursor.stop()
        for record in records:
            symbol = record.key.decode(errors="replace").rpartition(":")[2] if record.key else ""
            if symbol in wanted:
                per_partition = counts.setdefault(symbol, {}).setdefault(topic, {})
                per_partition[record.partition] = per_partition.get(record.partition, 0) + 1
    moves = {}
    for symbol, topics in sorted(counts.items()):
        parts = [(topic, {p: (ends[topic][p], n) for p, n in sorted(by.items())}) for topic, by in topics.items()]
        moves[symbol] = LiveMove(symbol, parts[0][0], parts[0][1], dict(parts[1:]))
    return moves


def _moves_of(behind: dict[str, set[str]], by_symbol: dict[str, LiveMove]) -> dict[str, LiveMove]:
    """subject -> how far live moved for it: its symbol's move (a subject that is a symbol), or its symbols'."""
    out = {}
    for subject, symbols in behind.items():
        moves = [by_symbol[s] for s in sorted(symbols) if s in by_symbol]
        if not moves:
            continue
        if len(moves) == 1 and moves[0].symbol == subject:
            out[subject] = moves[0]
            continue
        merged: dict[str, dict[int, tuple[int, int]]] = {}
        for move in moves:
            for topic, part in ((move.topic, move.after_cut), *move.elsewhere.items()):
                into = merged.setdefault(topic, {})
                for p, (end, n) in part.items():
                    into[p] = (end, into.get(p, (end, 0))[1] + n)
        (first, part), *rest = merged.items()
        out[subject] = LiveMove(subject, first, part, dict(rest))
    return out


async def _diff_once(
    redis: Redis, left_label: str, right_label: str, symbols: list[str] | None, sections: list[StateSection],
) -> DiffReport:
    left, right = await side(redis, left_label), await side(redis, right_label)
    if left.run is None and right.run is None:
        raise DiffError("compare a run with live, or two runs: live vs live is always equal")
    runs = [s.run for s in (left, right) if s.run is not None]
    stages = {stage for run in runs for stage in run.stages}
    # The runs' stages say what state they left: a P&L run has no prices to compare, a price run no P&L.
    left_by_stages = {section.name for stage in stages for section in SECTIONS_BY_STAGE.get(stage, [])}
    symbol_sections = [section for section in sections if section.name in left_by_stages]
    chosen: list[str] = []
    if symbol_sections:
        if symbols:
            chosen = sorted(set(symbols))
        else:
            found = set().union(*(set(r.symbols) for r in runs))
            for s in (left, right):
                if s.run is not None and not s.run.symbols:
                    found |= await symbols_in(redis, s.namespace, symbol_sections)
            chosen = sorted(found)
    left_state = await read_state(redis, left.namespace, chosen, symbol_sections)
    right_state = await read_state(redis, right.namespace, chosen, symbol_sections)
    differences = [
        difference
        for symbol in chosen
        for section in symbol_sections
        for difference in compare_section(symbol, section.name, left_state[symbol].get(section.name, {}),
                                          right_state[symbol].get(section.name, {}))
    ]
    positions: list[str] = []
    accounts: list[str] = []
    if "pnl" in stages:
        accounts = sorted(set().union(*(set(r.accounts) for r in runs if "pnl" in r.stages)))
        for s in (left, right):
            if s.run is not None and "pnl" in s.run.stages and not s.run.accounts:
                accounts = sorted(set(accounts) | await pnl_accounts(redis, s.namespace))
        wanted = set(symbols) if symbols else _filter(runs)
        left_pnl = await read_pnl(redis, left.namespace, accounts, wanted)
        right_pnl = await read_pnl(redis, right.namespace, accounts, wanted)
        positions = sorted((set(left_pnl) | set(right_pnl)) - set(accounts))
        for subject in [*positions, *accounts]:
            for name in sorted(set(left_pnl.get(subject, {})) | set(right_pnl.get(subject, {})), reverse=True):
                differences += compare_section(subject, name, left_pnl.get(subject, {}).get(name, {}),
                                               right_pnl.get(subject, {}).get(name, {}))
    return DiffReport(left, right, chosen, differences, positions=positions, accounts=accounts)


def _filter(runs: list[ReplayRun]) -> set[str] | None:
    """The symbols a run was limited to (``--symbol``), if any was: P&L totals then cover only those."""
    limited = [set(run.symbols_filter) for run in runs if run.symbols_filter]
    return set().union(*limited) if limited else None


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
