"""RawEventEncoder: an Alpaca message as alpaca-py hands it over (raw mode) -> Kafka key and JSON value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack
import orjson

from schemas.timestamps import datetime_to_ns, format_ns
from schemas.topics import RAW_TOPIC_BY_MESSAGE_TYPE


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """A record ready to send: topic, key (symbol bytes) and JSON value bytes."""

    topic: str
    key: bytes
    value: bytes


def encode_raw_event(message: dict[str, Any], received_ns: int) -> KafkaRecord | None:
    """Keep every Alpaca field as received; ``t`` becomes RFC 3339 with all nine fractional digits.

    Returns None for message types tickwire does not publish (statuses, corrections, ...).
    """
    topic = RAW_TOPIC_BY_MESSAGE_TYPE.get(message.get("T"))  # type: ignore[arg-type]
    if topic is None:
        return None
    value = dict(message)
    stamp = value.get("t")
    if isinstance(stamp, msgpack.Timestamp):
        value["t"] = format_ns(stamp.to_unix_nano())
    elif isinstance(stamp, datetime):
        value["t"] = format_ns(datetime_to_ns(stamp))
    value["received_at"] = format_ns(received_ns)
    symbol = value.get("S")
    key = symbol.encode() if isinstance(symbol, str) else b""
    # OPT_NON_STR_KEYS: never fail on odd keys from the wire; the processor dead-letters what is wrong.
    return KafkaRecord(topic.name, key, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str))
