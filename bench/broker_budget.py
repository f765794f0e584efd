"""How far the embedded broker goes: fetch latency and memory against the batches stored in one partition.

``python -m bench.broker_budget [--step 20000 --steps 8]`` starts its own embedded broker, fills one
partition with single-record batches (as a slow feed makes them), and after each step times a fetch of
the newest record with tickwire's fetch settings (the FetchGuard widening the wait as needed) and reads
the broker's RSS. The README's budget (hours at a given rate before fetches pass 100 ms or memory 4 GiB)
divides these by the batches per second a rate makes (see docs/embedded-broker.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from tickwire.fetch_guard import FetchGuard

from deploy.embedded.broker import EmbeddedBroker
from processors.settings import ProcessorSettings
from schemas.topics import TopicSpec
from tickwire.topic_admin import ensure_topics

PRODUCERS = 8
RECORD = b"x" * 200  # about a raw quote's size


async def fill(bootstrap: str, topic: str, batches: int) -> int:
    """``batches`` single-record batches in partition 0 (each producer awaits every ack before its next send);
    returns the last offset. tests/integration/test_broker_limit.py fills its partition with it too."""
    async def produce(share: int) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await producer.start()
        last = -1
        try:
            for _ in range(share):
                last = max(last, (await producer.send_and_wait(topic, RECORD, partition=0)).offset)
        finally:
            await producer.stop()
        return last

    return max(await asyncio.gather(*(produce(batches // PRODUCERS) for _ in range(PRODUCERS))))


async def newest_fetch_s(bootstrap: str, topic: str, last: int, partition: int = 0) -> tuple[float, float]:
    """Seconds to read the record at ``last`` with the processor's settings, and the fetch wait that got it.
    The soak (tests/integration/test_chaos_soak.py) samples it over time."""
    settings = ProcessorSettings()
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=round(settings.fetch_wait_s * 1000))
    await consumer.start()
    guard = FetchGuard(consumer, lambda _: last, base_wait_s=settings.fetch_wait_s,
                       max_wait_s=settings.fetch_wait_max_s, name="budget")
    try:
        consumer.assign([tp])
        consumer.seek(tp, last)
        started = time.monotonic()
        while time.monotonic() - started < 30:
            batches = await consumer.getmany(timeout_ms=100)
            guard(batches)
            if batches.get(tp):
                break
        elapsed = time.monotonic() - started
        # Once widened: what one more fetch of the newest record costs (the steady state).
        consumer.seek(tp, last)
        again = time.monotonic()
        while not (await consumer.getmany(tp, timeout_ms=100)).get(tp) and time.monotonic() - again < 30:
            pass
        return time.monotonic() - again, guard.wait_s if elapsed < 30 else float("nan")
    finally:
        await consumer.stop()


async def run(step: int, steps: int) -> None:
    async with EmbeddedBroker(Path(tempfile.mkdtemp(prefix="tickwire-budget-"))) as broker:
        topic = f"budget-{uuid.uuid4().hex[:6]}"
        await ensure_topics(broker.bootstrap, 1, [TopicSpec(topic, "none", bytes, "budget")])
        assert broker.process.pid is not None
        proc = psutil.Process(broker.process.pid)
        base_rss = proc.memory_info().rss
        print("| batches in the partition | newest-record fetch (ms) | fetch wait needed (ms) | broker RSS (MiB) |")
        print("|---:|---:|---:|---:|")
        stored = 0
        for _ in range(steps):
            last = await fill(broker.bootstrap, topic, step)
            stored += step
            fetch_s, wait_s = await newest_fetch_s(broker.bootstrap, topic, last)
            rss = proc.memory_info().rss
            print(f"| {stored:,} | {fetch_s * 1000:.0f} | {wait_s * 1000:.0f} | {rss / 2**20:.0f} "
                  f"(+{(rss - base_rss) / stored:.0f} B/batch) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_budget", description=__doc__)
    parser.add_argument("--step", type=int, default=20_000, help="batches added per step")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.step, args.steps))


if __name__ == "__main__":
    main()
