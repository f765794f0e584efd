"""Count the Kafka record batches stored in a topic's partitions: records per batch, as the broker keeps them.

The embedded broker's fetch cost grows with the number of stored batches per partition (docs/embedded-broker.md),
so the batches a stage writes per input record decide how long the embedded default stays real-time.

``python -m bench.batch_count --bootstrap HOST:PORT [topics...]`` reads each partition from offset 0 to its
high watermark and prints, per topic, its records, batches and records per batch. "The end" is the high
watermark the fetch responses carry (``consumer.highwater``), taken when first known: the embedded broker
answers ListOffsets(latest), hence ``end_offsets``, wrongly for multi-record batches.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import PartitionRecords

from schemas.topics import FEED_GAPS, PNL, POSITIONS_BY_SYMBOL, PRICES, QUOTES_RAW, TRADES_RAW

DEFAULT_TOPICS = tuple(t.name for t in (QUOTES_RAW, TRADES_RAW, PRICES, PNL, FEED_GAPS, POSITIONS_BY_SYMBOL))
FETCH_WAIT_MS = 500  # a short fetch wait returns nothing once a partition holds many batches (embedded broker)
TIMEOUT_S = 300.0

_patch_lock = asyncio.Lock()  # the class patch below is process-wide: one count at a time


class _CountingRecords:
    """Stands in for a fetch response's records (MemoryRecords): notes the base offset of every batch read."""

    def __init__(self, records: Any, seen: set[int]) -> None:
        self._records = records
        self._seen = seen

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if batch is not None:
            self._seen.add(batch.base_offset)  # a set: a batch fetched twice (a fetch from mid-batch) counts once
        return batch


async def count_batches(bootstrap: str, topic: str, fetch_wait_ms: int = FETCH_WAIT_MS,
                        timeout_s: float = TIMEOUT_S) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: (records, batches) from offset 0 to the high watermark (when first known)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # a topic the consumer has not asked about yet
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"topic {topic!r} not found")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        seen: dict[TopicPartition, set[int]] = {tp: set() for tp in tps}
        records: dict[TopicPartition, int] = dict.fromkeys(tps, 0)
        stops: dict[TopicPartition, int] = {}
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)

        original = PartitionRecords._unpack_records

        def counting(self: Any) -> Iterator[Any]:
            if self._tp in seen:
                self._records = _CountingRecords(self._records, seen[self._tp])
            return original(self)  # type: ignore[no-any-return]

        async with _patch_lock:
            # aiokafka exposes no batch boundaries: count them where it unpacks a fetch, in this tool only.
            PartitionRecords._unpack_records = counting
            try:
                started = time.monotonic()
                pending = set(tps)
                while pending:
                    if time.monotonic() - started > timeout_s:
                        raise TimeoutError(f"{topic}: partitions {sorted(tp.partition for tp in pending)} "
                                           f"not read to their high watermark in {timeout_s:.0f}s")
                    fetched = await consumer.getmany(*pending, timeout_ms=fetch_wait_ms * 2)
                    for tp, batch in fetched.items():
                        stop = stops.setdefault(tp, consumer.highwater(tp) or max(r.offset for r in batch) + 1)
                        records[tp] += sum(1 for r in batch if r.offset < stop)
                    for tp in list(pending):
                        if tp not in stops and consumer.highwater(tp) is not None:
                            stops[tp] = consumer.highwater(tp)
                        if tp in stops and await consumer.position(tp) >= stops[tp]:
                            pending.discard(tp)
            finally:
                PartitionRecords._unpack_records = original
        return {tp.partition: (records[tp], sum(1 for base in seen[tp] if base < stops[tp])) for tp in tps}
    finally:
        await consumer.stop()


def table(counts: dict[str, dict[int, tuple[int, int]]]) -> str:
    """topic, records, batches, records/batch: one line per topic."""
    lines = [f"{'topic':<48} {'records':>10} {'batches':>10} {'records/batch':>14}"]
    for topic, per_partition in counts.items():
        n_records = sum(r for r, _ in per_partition.values())
        n_batches = sum(b for _, b in per_partition.values())
        ratio = f"{n_records / n_batches:.2f}" if n_batches else "-"
        lines.append(f"{topic:<48} {n_records:>10} {n_batches:>10} {ratio:>14}")
    return "\n".join(lines)


async def _main(bootstrap: str, topics: Sequence[str], fetch_wait_ms: int) -> None:
    counts = {topic: await count_batches(bootstrap, topic, fetch_wait_ms) for topic in topics}
    print(table(counts))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_count", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    parser.add_argument("--fetch-wait-ms", type=int, default=FETCH_WAIT_MS, help="fetch_max_wait_ms (default 500)")
    parser.add_argument("topics", nargs="*", default=list(DEFAULT_TOPICS),
                        help=f"topics to count (default: {' '.join(DEFAULT_TOPICS)})")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args.bootstrap, args.topics, args.fetch_wait_ms))
    except (LookupError, TimeoutError) as exc:
        parser.exit(1, f"batch_count: {exc}\n")


if __name__ == "__main__":
    main()
