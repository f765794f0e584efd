"""RawEventEncoder: an Alpaca message as alpaca-py hands it over (raw mode) -> Kafka key and JSON value."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgpack
import orjson

from schemas.timestamps import NS_PER_SECOND, datetime_to_ns
from schemas.topics import RAW_TOPIC_BY_MESSAGE_TYPE


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """A record ready to send: topic, key (symbol bytes) and JSON value bytes."""

    topic: str
    key: bytes
    value: bytes


@lru_cache(maxsize=256)
def _second_prefix(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def format_ns_fast(ns: int) -> str:
    """:func:`schemas.timestamps.format_ns`, with the date-time part cached per second (the hot path
    formats thousands of stamps from the same few seconds)."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    return f"{_second_prefix(seconds)}.{fraction:09d}Z"


def encode_raw_event(message: dict[str, Any], received_ns: int, received_at: str | None = None) -> KafkaRecord | None:
    """Keep every Alpaca field as received; ``t`` becomes RFC 3339 with all nine fractional digits.

    ``received_at`` may be passed preformatted (all messages of a frame share it). Returns None for
    message types tickwire does not publish (statuses, corrections, ...).
    """
    topic = RAW_TOPIC_BY_MESSAGE_TYPE.get(message.get("T"))  # type: ignore[arg-type]
    if topic is None:
        return None
    value = dict(message)
    stamp = value.get("t")
    if isinstance(stamp, msgpack.Timestamp):
        value["t"] = format_ns_fast(stamp.to_unix_nano())
    elif isinstance(stamp, datetime):
        value["t"] = format_ns_fast(datetime_to_ns(stamp))
    value["received_at"] = received_at or format_ns_fast(received_ns)
    symbol = value.get("S")
    key = symbol.encode() if isinstance(symbol, str) else b""
    # OPT_NON_STR_KEYS: never fail on odd keys from the wire; the processor dead-letters what is wrong.
    return KafkaRecord(topic.name, key, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str))
