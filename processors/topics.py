"""Faust handles on the topics the price processor reads and writes (names from schemas.topics)."""

from __future__ import annotations

from processors.app import app, settings
from schemas.topics import PRICES, QUOTES_RAW, QUOTES_REJECTED

# Values stay raw bytes so a malformed message becomes a dead letter instead of a deserialisation crash.
quotes_raw_topic = app.topic(
    QUOTES_RAW.name, key_type=bytes, value_type=bytes, value_serializer="raw",
    key_serializer="raw", partitions=settings.topic_partitions,
)
quotes_rejected_topic = app.topic(
    QUOTES_REJECTED.name, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions
)
prices_topic = app.topic(
    PRICES.name, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions
)
