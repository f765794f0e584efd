"""``tickwire diff``: compare two replay runs, or a run and the live state, symbol by symbol."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

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

    @property
    def differing_symbols(self) -> list[str]:
        """Symbols with at least one difference."""
        return sorted({d.symbol for d in self.differences})


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
    sections: list[StateSection] = SECTIONS,
) -> DiffReport:
    """Compare every section of every symbol: the symbols given, else those the run(s) processed."""
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
