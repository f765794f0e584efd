"""Restore reads: ranges of partitions read to their end, records in order or the newest value per key.

A range without a stop ends at the high watermark the fetches report. Restores read compacted topics or
the committed range of an input, so a range may start below the partition's first offset (retention
removed it): the consumer then resets to the earliest offset.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from tickwire.errors import TickwireError
from tickwire.kafka import READ_ISOLATION, aiokafka_security, bootstrap_list
from tickwire.settings import TickwireSettings

log = structlog.get_logger(__name__)

RESTORE_FETCH_WAIT_MS = 500
RESTORE_TIMEOUT_S = 300.0

Range = tuple[int, int | None]  # [start, stop) offsets; stop None = to the end


class RestoreError(TickwireError):
    """A partition could not be read to the end of its range in time (broker unreachable or stalled)."""


async def read_ranges(settings: TickwireSettings, ranges: Mapping[TopicPartition, Range],
                      timeout_s: float = RESTORE_TIMEOUT_S) -> dict[TopicPartition, list[ConsumerRecord]]:
    """Every record of each range, in offset order per partition."""
    wanted = {tp: r for tp, r in ranges.items() if r[1] is None or r[1] > r[0]}
    out: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in ranges}
    if not wanted:
        return out
    assert settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_list(settings.kafka_bootstrap_servers), group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=RESTORE_FETCH_WAIT_MS,
        max_partition_fetch_bytes=4 * 1024 * 1024, isolation_level=READ_ISOLATION,
        **aiokafka_security(settings),
    )
    await consumer.start()
    started = time.monotonic()
    try:
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start)
        pending = set(wanted)
        while pending:
            if time.monotonic() - started > timeout_s:
                names = ", ".join(map(_name, sorted(pending)))
                raise RestoreError(f"reading {names} did not finish in {timeout_s:.0f}s")
            batches = await consumer.getmany(*pending, timeout_ms=RESTORE_FETCH_WAIT_MS * 2)
            for tp, records in batches.items():
                stop = wanted[tp][1]
                out[tp].extend(r for r in records if stop is None or r.offset < stop)
            for tp in list(pending):
                stop = wanted[tp][1]
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                if (stop is not None and position >= stop) or (
                        highwater is not None and position >= (highwater if stop is None else min(stop, highwater))):
                    pending.discard(tp)
    finally:
        await consumer.stop()
    log.info("partitions read", partitions=[_name(tp) for tp in sorted(wanted)],
             records=sum(len(v) for v in out.values()), seconds=round(time.monotonic() - started, 2))
    return out


def newest_by_key(records: list[ConsumerRecord]) -> dict[bytes, bytes]:
    """Each key's newest value (a tombstone drops the key), as a compacted topic would keep it."""
    values: dict[bytes, bytes] = {}
    for record in records:
        if record.key is None:
            continue
        if record.value is None:
            values.pop(record.key, None)
        else:
            values[record.key] = record.value
    return values


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"
