"""Where a range of a topic starts or ends, as a user writes it: an offset, or a time (absolute or "15m" ago)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from schemas.timestamps import NS_PER_SECOND, now_ns, parse_ns

TimeField = Literal["record", "received_at", "t"]
TIME_FIELDS: tuple[TimeField, ...] = ("record", "received_at", "t")

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_NS = {"ms": 1_000_000, "s": NS_PER_SECOND, "m": 60 * NS_PER_SECOND, "h": 3600 * NS_PER_SECOND,
            "d": 86_400 * NS_PER_SECOND}


@dataclass(frozen=True)
class OffsetBound:
    """An offset in every partition (``default``), or per partition (``by_partition`` wins)."""

    default: int | None
    by_partition: dict[int, int]

    def for_partition(self, partition: int) -> int | None:
        """The offset given for ``partition``, or None when this bound does not name it."""
        return self.by_partition.get(partition, self.default)

    @property
    def only_partitions(self) -> frozenset[int] | None:
        """The partitions this bound limits a range to: those it names when it has no ``*``/plain default."""
        return frozenset(self.by_partition) if self.default is None else None


def named_partitions(*bounds: Bound | None) -> frozenset[int] | None:
    """Partitions a range is limited to: the union of those named by bounds without a default; None = all."""
    named = [b.only_partitions for b in bounds if isinstance(b, OffsetBound) and b.only_partitions is not None]
    return frozenset().union(*named) if named else None


@dataclass(frozen=True)
class TimeBound:
    """A point in time (nanoseconds since the epoch), compared with each record's ``field`` time."""

    ns: int


Bound = OffsetBound | TimeBound


def parse_offsets(text: str) -> OffsetBound:
    """``"120"`` (every partition) or ``"0:120,3:98"`` (per partition; others: ``"*:0"`` sets the default)."""
    default: int | None = None
    by_partition: dict[int, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        partition, sep, offset = item.rpartition(":")
        try:
            value = int(offset)
            if value < 0:
                raise ValueError
            if not sep or partition == "*":
                default = value
            else:
                by_partition[int(partition)] = value
        except ValueError:
            raise ValueError(f"bad offset {item!r}: expected N, or PARTITION:N, e.g. 0:120,3:98") from None
    if default is None and not by_partition:
        raise ValueError(f"no offset in {text!r}")
    return OffsetBound(default, by_partition)


def parse_time(text: str, now: int | None = None) -> TimeBound:
    """RFC 3339 (``2026-11-21T14:30:00Z``, a missing zone means UTC), ``now``, or an age like ``15m``, ``2h``."""
    value = text.strip()
    current = now_ns() if now is None else now
    if value == "now":
        return TimeBound(current)
    relative = _RELATIVE.fullmatch(value.removeprefix("-"))
    if relative:
        return TimeBound(current - int(float(relative.group(1)) * _UNIT_NS[relative.group(2)]))
    try:
        return TimeBound(parse_ns(value))
    except ValueError:
        pass
    try:
        return TimeBound(parse_ns(value + "Z"))
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: expected RFC 3339 (2026-11-21T14:30:00Z), 'now', or an age such as 90s, 15m, 2h"
        ) from None


def parse_bound(offset: str | None, time: str | None, what: str) -> Bound | None:
    """The bound given by at most one of ``--{what}-offset`` and ``--{what}-time``."""
    if offset is not None and time is not None:
        raise ValueError(f"give --{what}-offset or --{what}-time, not both")
    if offset is not None:
        return parse_offsets(offset)
    if time is not None:
        return parse_time(time)
    return None
