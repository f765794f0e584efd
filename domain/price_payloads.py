"""PricePayloads: an accepted price serialised once for every output it has (Kafka, the Redis key, the channel)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson

from schemas.events import PriceEvent


class PricePayloads(NamedTuple):
    """The ``prices`` value, the ``price:{SYMBOL}`` snapshot and the ``price.updated`` message of one price."""

    symbol: str
    timestamp: str
    event: bytes
    snapshot: bytes
    update: bytes


def price_payloads(fields: dict[str, Any]) -> PricePayloads:
    """From a price's JSON fields (``PriceEvent.model_dump(mode="json")``): pydantic formats its Decimals once,
    not once per output (three times a price before)."""
    # PriceSnapshot is PriceEvent without received_at: same fields, same order, so the same JSON less one field.
    snapshot = {name: value for name, value in fields.items() if name != "received_at"}
    update = {"event_type": "price.updated", "symbol": fields["symbol"], "price": fields["mid"],
              "bid": fields["bid"], "ask": fields["ask"], "timestamp": fields["timestamp"]}
    return PricePayloads(fields["symbol"], fields["timestamp"], _dumps(fields), _dumps(snapshot), orjson.dumps(update))


def _dumps(value: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # a size beyond 64 bits (valid JSON, seen in fuzzing): the stdlib writes it, in the same form
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def payloads_of(event: PriceEvent) -> PricePayloads:
    """The payloads of a price event (tests and one-off writes; the price stage has the fields already)."""
    return price_payloads(event.model_dump(mode="json"))
