"""Turns user bounds (offsets or times) into exact offsets per partition, and says how each was found.

The broker's time index (``offsets_for_times``) is checked against the records on both sides of its answer,
and the partition is scanned when the check fails: Redpanda versions have answered a batch's base offset
for a time inside it, and a payload's time field (``received_at``, ``t``) is indexed by no broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers.tools.bounds import Bound, OffsetBound, TimeBound, TimeField, named_partitions
from schemas.timestamps import format_ns, parse_ns
from tickwire.errors import TickwireError
from tickwire.kafka import topic_partitions

FETCH_DEADLINE_S = 15.0


class RangeError(TickwireError, ValueError):
    """The range cannot be resolved (no such topic, partition, or the broker does not answer)."""


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition and how each end was found."""

    partition: int
    start: int
    end: int
    start_how: str
    end_how: str

    @property
    def size(self) -> int:
        """How many offsets the range spans."""
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class TopicRange:
    """A resolved range of a topic, with notes on how the broker's answers were checked."""

    topic: str
    partitions: tuple[PartitionRange, ...]
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Offsets spanned in all partitions."""
        return sum(p.size for p in self.partitions)


def record_time_ns(record: ConsumerRecord, time_field: TimeField) -> int | None:
    """The record's time: its Kafka timestamp, or a payload field (``received_at``, ``t``); None if unreadable."""
    if time_field == "record":
        return record.timestamp * 1_000_000 if record.timestamp is not None and record.timestamp >= 0 else None
    try:
        value = orjson.loads(record.value)
        return parse_ns(value[time_field]) if isinstance(value, dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


@dataclass
class _Lookup:
    partition: int
    target_ns: int
    beginning: int
    end: int
    offset: int | None = None
    how: str = ""
    broker_answer: int | None = field(default=None)


class RangeResolver:
    """Resolves bounds on one topic with a started, group-less consumer of its own (it re-assigns it)."""

    def __init__(self, consumer: AIOKafkaConsumer, time_field: TimeField = "record") -> None:
        self.consumer = consumer
        self.time_field = time_field
        self.scanned = 0

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions; RangeError if the topic does not exist."""
        partitions = await topic_partitions(self.consumer, topic)
        if not partitions:
            raise RangeError(f"topic {topic!r} does not exist (or has no partitions)")
        return [TopicPartition(topic, p) for p in sorted(partitions)]

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The end (next offset) of each partition."""
        return dict(await self.consumer.end_offsets(tps))

    async def resolve(self, topic: str, start: Bound | None, end: Bound | None) -> TopicRange:
        """Offsets ``[start, end)`` per partition; no start means the beginning, no end means the current end.

        Offsets given per partition only (``1:100``) limit the range to the partitions they name (the union of
        both bounds'); a plain ``N`` or ``*:N`` covers every partition.
        """
        tps = await self.partitions(topic)
        known = {tp.partition for tp in tps}
        for bound in (start, end):
            if isinstance(bound, OffsetBound) and set(bound.by_partition) - known:
                missing = sorted(set(bound.by_partition) - known)
                raise RangeError(f"{topic} has partitions {sorted(known)}, not {missing}")
        only = named_partitions(start, end)
        if only is not None:
            tps = [tp for tp in tps if tp.partition in only]
        beginnings = await self.consumer.beginning_offsets(tps)
        ends = await self.end_offsets(tps)
        notes: list[str] = []
        starts: dict[int, tuple[int, str]] = {}
        lookups = await self._lookups(topic, start, {tp.partition: (beginnings[tp], ends[tp]) for tp in tps}, notes)
        for tp in tps:
            starts[tp.partition] = self._offset(start, tp.partition, beginnings[tp], ends[tp], "beginning", lookups)
        # An end time is searched from the start on, so out-of-order record times never end a range before it begins.
        lookups = await self._lookups(topic, end, {tp.partition: (starts[tp.partition][0], ends[tp]) for tp in tps},
                                      notes)
        ranges = []
        for tp in tps:
            lo, lo_how = starts[tp.partition]
            hi, hi_how = self._offset(end, tp.partition, beginnings[tp], ends[tp], "end", lookups)
            ranges.append(PartitionRange(tp.partition, lo, max(lo, hi), lo_how, hi_how))
        return TopicRange(topic, tuple(ranges), tuple(notes))

    async def _lookups(
        self, topic: str, bound: Bound | None, spans: dict[int, tuple[int, int]], notes: list[str]
    ) -> dict[int, _Lookup]:
        if not isinstance(bound, TimeBound):
            return {}
        lookups = {p: _Lookup(p, self._target(bound), first, last) for p, (first, last) in spans.items()}
        notes.extend(await self._find_times(topic, list(lookups.values())))
        return lookups

    def _offset(
        self, bound: Bound | None, partition: int, first: int, last: int, default: str, lookups: dict[int, _Lookup]
    ) -> tuple[int, str]:
        if bound is None:
            return (first if default == "beginning" else last), default
        if isinstance(bound, OffsetBound):
            given = bound.for_partition(partition)
            if given is None:
                return (first if default == "beginning" else last), default
            return min(max(given, first), last), "offset"
        found = lookups[partition]
        return found.offset if found.offset is not None else last, found.how

    def _target(self, bound: TimeBound) -> int:
        # Kafka record timestamps have millisecond resolution: compare whole milliseconds, as the broker does.
        return bound.ns - bound.ns % 1_000_000 if self.time_field == "record" else bound.ns

    async def _find_times(self, topic: str, lookups: list[_Lookup]) -> list[str]:
        notes: list[str] = []
        if not lookups:
            return notes
        if self.time_field == "record":
            await self._ask_broker(topic, lookups)
        to_scan: dict[int, list[_Lookup]] = {}
        for lookup in lookups:
            if lookup.offset is None:
                to_scan.setdefault(lookup.partition, []).append(lookup)
        for partition, pending in sorted(to_scan.items()):
            scanned = await self._scan(TopicPartition(topic, partition), pending)
            notes.append(self._scan_note(partition, pending, scanned))
        return notes

    def _scan_note(self, partition: int, lookups: list[_Lookup], scanned: int) -> str:
        times = ", ".join(format_ns(lk.target_ns) for lk in lookups)
        if self.time_field != "record":
            why = f"the broker indexes record timestamps, not the payload's {self.time_field!r}"
        else:
            answers = ", ".join("none" if lk.broker_answer is None else str(lk.broker_answer) for lk in lookups)
            why = f"the broker's time index answered offset {answers}, which the records around it contradict"
        return f"partition {partition}: {why}; found {times} by scanning {scanned} records"

    async def _ask_broker(self, topic: str, lookups: list[_Lookup]) -> None:
        for lookup in lookups:
            tp = TopicPartition(topic, lookup.partition)
            answer = (await self.consumer.offsets_for_times({tp: lookup.target_ns // 1_000_000}))[tp]
            candidate = lookup.end if answer is None else answer.offset
            lookup.broker_answer = None if answer is None else answer.offset
            if await self._verified(tp, lookup, candidate):
                lookup.offset, lookup.how = candidate, "broker time index"

    async def _verified(self, tp: TopicPartition, lookup: _Lookup, candidate: int) -> bool:
        # The first record at or after the target: the one before it is earlier, and it is not.
        if not lookup.beginning <= candidate <= lookup.end:
            return False
        if candidate > lookup.beginning:
            before = await self._time_at(tp, candidate - 1)
            if before is None or before >= lookup.target_ns:
                return False
        if candidate < lookup.end:
            at = await self._time_at(tp, candidate)
            if at is None or at < lookup.target_ns:
                return False
        return True

    async def _time_at(self, tp: TopicPartition, offset: int) -> int | None:
        self.consumer.assign([tp])
        self.consumer.seek(tp, offset)
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(tp, timeout_ms=200, max_records=1)
            for record in batch.get(tp, []):
                return record_time_ns(record, self.time_field)
        raise RangeError(f"could not read offset {offset} of {tp.topic}[{tp.partition}] in {FETCH_DEADLINE_S}s")

    async def _scan(self, tp: TopicPartition, lookups: list[_Lookup]) -> int:
        """Read the partition once, setting each lookup to the first offset whose time is at or after its target."""
        beginning, end = lookups[0].beginning, lookups[0].end
        pending = sorted(lookups, key=lambda lk: lk.target_ns)
        for lookup in pending:
            lookup.how = "scan"
        self.consumer.assign([tp])
        self.consumer.seek(tp, beginning)
        scanned, position = 0, beginning
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while pending and position < end:
            batch = await self.consumer.getmany(tp, timeout_ms=200, max_records=5000)
            records = batch.get(tp, [])
            if records:
                deadline = time.monotonic() + FETCH_DEADLINE_S
            elif time.monotonic() > deadline:
                raise RangeError(f"{tp.topic}[{tp.partition}] stopped answering at offset {position}")
            for record in records:
                if record.offset >= end:
                    break
                scanned += 1
                position = record.offset + 1
                stamp = record_time_ns(record, self.time_field)
                while pending and stamp is not None and stamp >= pending[0].target_ns:
                    pending.pop(0).offset = record.offset
        for lookup in pending:
            lookup.offset = end  # nothing at or after the target: the range is empty from here
        self.scanned += scanned
        return scanned
