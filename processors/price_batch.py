"""Turns a batch of raw quotes into price events and dead letters, keeping the latest price monotone."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from processors.pricing import price_event
from processors.quote_validator import QuoteValidator, Rejection
from schemas.events import PriceEvent, RejectedQuote, RejectReason
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


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected quote and the Kafka key of the record it came from."""

    key: bytes | None
    value: RejectedQuote


@dataclass(slots=True)
class BatchResult:
    """What a batch produced, in input order."""

    prices: list[PriceEvent] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    appended_ns: list[int] = field(default_factory=list)  # Kafka time of each price's quote, as prices


def price_batch(
    records: Iterable[SourceRecord],
    latest_by_symbol: MutableMapping[str, dict[str, Any]],
    validator: QuoteValidator,
) -> BatchResult:
    """Validate each record and accept it only if it is not older than the symbol's latest price.

    ``latest_by_symbol`` (the Faust table in production) holds ``PriceEvent`` JSON dicts; it is written
    once per symbol per batch, because each write is a changelog record.
    """
    result = BatchResult()
    changed: dict[str, dict[str, Any]] = {}
    for record in records:
        outcome = validator.validate(record.value)
        if isinstance(outcome, Rejection):
            result.rejected.append(dead_letter(record, outcome))
            continue
        event = price_event(outcome)
        stored = changed.get(event.symbol) or latest_by_symbol.get(event.symbol)
        # Fixed-width RFC 3339 text sorts in time order.
        if stored is not None and stored["timestamp"] > event.timestamp:
            detail = f"quote time {event.timestamp} is older than the latest price's {stored['timestamp']}"
            result.rejected.append(
                dead_letter(record, Rejection(RejectReason.OUT_OF_ORDER, detail, event.symbol, _payload(record)))
            )
            continue
        changed[event.symbol] = event.model_dump(mode="json")
        result.prices.append(event)
        result.appended_ns.append(record.appended_ns)
    for symbol, value in changed.items():
        latest_by_symbol[symbol] = value
    return result


def _payload(record: SourceRecord) -> Any:
    # Only reached for values that already decoded once, so this cannot fail.
    return orjson.loads(record.value)


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
