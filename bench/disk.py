"""The broker's disk: what its data directory holds, per topic, and the most the topics' retention lets it hold."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.topics import TopicSpec
from tickwire.topic_admin import Retention, topic_configs

BLOCK_BYTES = 512  # st_blocks' unit


def allocated_bytes(path: Path) -> int:
    """Bytes the files under ``path`` occupy on disk, as ``du`` counts them (Kafka's index files are sparse)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a segment that retention deleted during the walk
                total += os.stat(os.path.join(root, name)).st_blocks * BLOCK_BYTES
    return total


def topic_bytes(log_dirs: Path) -> dict[str, int]:
    """Allocated bytes per topic of a Kafka log directory (its partitions are folders named ``<topic>-<n>``)."""
    out: dict[str, int] = {}
    for entry in sorted(log_dirs.iterdir()) if log_dirs.is_dir() else ():
        topic, _, partition = entry.name.rpartition("-")
        if entry.is_dir() and topic and partition.isdigit():
            out[topic] = out.get(topic, 0) + allocated_bytes(entry)
    return out


def retention_bound_bytes(specs: Iterable[TopicSpec], partitions: int, retention: Retention) -> int:
    """The most the stream topics of ``specs`` may hold: per partition its retention.bytes and one segment more
    (retention deletes whole closed segments; the open one grows to a segment first)."""
    total = 0
    for spec in specs:
        if not spec.compacted:
            configs = topic_configs(spec, retention)
            total += partitions * (int(configs["retention.bytes"]) + int(configs["segment.bytes"]))
    return total


@dataclass(frozen=True)
class BrokerDisk:
    """One reading of the broker's data directory, in bytes."""

    total: int  # everything: topics, consumer offsets, cluster metadata, the broker's own log files
    stream: int  # the stream topics, which retention bounds
    topics: dict[str, int]  # per topic

    @classmethod
    def read(cls, data_dir: Path, log_dirs: Path, stream_topics: set[str]) -> BrokerDisk:
        """Measure ``data_dir`` now; ``log_dirs`` is its Kafka log directory."""
        topics = topic_bytes(log_dirs)
        return cls(allocated_bytes(data_dir), sum(v for k, v in topics.items() if k in stream_topics), topics)
