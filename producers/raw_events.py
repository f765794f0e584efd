"""RawEventEncoder: an Alpaca message as alpaca-py hands it over (raw mode) -> Kafka key and JSON value.

Which raw topic a message goes to is the feed source's routing (producers/feed_source.py), passed as
``topics``; without it a message goes where the pipeline reads it (schemas/topics.py), as tests and tools
that play the ingest's part expect.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgpack
import orjson

from schemas.timestamps import NS_PER_SECOND, datetime_to_ns
from schemas.topics import RAW_TOPIC_BY_MESSAGE_TYPE

# Message letter -> raw topic, as the processors read them.
PIPELINE_RAW_TOPICS: Mapping[str, str] = {kind: spec.name for kind, spec in RAW_TOPIC_BY_MESSAGE_TYPE.items()}


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


def encode_raw_event(
    message: dict[str, Any],
    received_ns: int,
    received_at: str | None = None,
    topics: Mapping[str, str] = PIPELINE_RAW_TOPICS,
) -> KafkaRecord | None:
    """Keep every Alpaca field as received; ``t`` becomes RFC 3339 with all nine fractional digits.

    ``received_at`` may be passed preformatted (all messages of a frame share it). ``topics`` maps a
    message letter to its raw topic; returns None for letters it does not name (statuses, corrections, ...).
    """
    kind = message.get("T")
    topic = topics.get(kind) if type(kind) is str else None  # a list "T" is unhashable
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
    try:
        data = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)
    except TypeError:  # an integer beyond 64 bits (JSON frames allow any size): published as text, dead-lettered
        data = orjson.dumps(_big_ints_as_text(value), option=orjson.OPT_NON_STR_KEYS, default=str)
    return KafkaRecord(topic, key, data)


def _big_ints_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _big_ints_as_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints_as_text(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value
