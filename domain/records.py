"""Consumed Kafka records and the dead letters made of the ones that cannot be used."""

from __future__ import annotations

from dataclasses import dataclass

from domain.quotes import Rejection
from schemas.events import RejectedQuote
from schemas.timestamps import format_ns, now_ns


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One consumed Kafka record: its raw key and value, and where it came from."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    appended_ns: int = 0  # the record's Kafka timestamp (0 = unknown), for latency metrics only
    tombstone: bool = False  # the Kafka value was null (``value`` is then empty): a delete, on compacted inputs


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record and the Kafka key of the record it came from."""

    key: bytes | None
    value: RejectedQuote


def dead_letter(record: SourceRecord, rejection: Rejection) -> DeadLetter:
    """The dead letter for a record: its key, the rejection, and where the record came from."""
    return DeadLetter(record.key, RejectedQuote(
        reason=rejection.reason,
        detail=rejection.detail,
        symbol=rejection.symbol,
        payload=rejection.payload,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        rejected_at=format_ns(now_ns()),
    ))
