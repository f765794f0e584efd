"""Turns a batch of raw quotes into price events and dead letters, keeping the latest price monotone."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.pricing import Price, price_of
from domain.quotes import QuoteValidator, Rejection
from domain.records import DeadLetter, SourceRecord, dead_letter
from schemas.events import RejectReason


@dataclass(slots=True)
class BatchResult:
    """What a batch produced, in input order."""

    prices: list[Price] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    appended_ns: list[int] = field(default_factory=list)  # Kafka time of each price's quote, as prices


def price_batch(
    records: Iterable[SourceRecord],
    latest_by_symbol: MutableMapping[str, dict[str, Any]],
    validator: QuoteValidator,
) -> BatchResult:
    """Validate each record and accept it only if it is not older than the symbol's latest price.

    ``latest_by_symbol`` (the price stage's changelog table) holds
    ``PriceEvent`` JSON dicts (the prices' ``fields``); it is written once per symbol per batch.
    """
    result = BatchResult()
    changed: dict[str, dict[str, Any]] = {}
    for record in records:
        outcome = validator.validate(record.value)
        if isinstance(outcome, Rejection):
            result.rejected.append(dead_letter(record, outcome))
            continue
        price = price_of(outcome)
        stored = changed.get(price.symbol) or latest_by_symbol.get(price.symbol)
        # Fixed-width RFC 3339 text sorts in time order.
        if stored is not None and stored["timestamp"] > price.timestamp:
            detail = f"quote time {price.timestamp} is older than the latest price's {stored['timestamp']}"
            result.rejected.append(
                dead_letter(record, Rejection(RejectReason.OUT_OF_ORDER, detail, price.symbol, _payload(record)))
            )
            continue
        changed[price.symbol] = price.fields
        result.prices.append(price)
        result.appended_ns.append(record.appended_ns)
    for symbol, value in changed.items():
        latest_by_symbol[symbol] = value
    return result


def _payload(record: SourceRecord) -> Any:
    # Only reached for values that already decoded once, so this cannot fail.
    return orjson.loads(record.value)
