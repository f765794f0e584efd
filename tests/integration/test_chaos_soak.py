"""Soak: the whole pipeline at a steady rate for TICKWIRE_SOAK_SECONDS (default 30 min) keeps its memory flat,
never lets a symbol's price stand still for STALE_S, and the oracle holds at the end. Long: TICKWIRE_LONG_TESTS=1.

TICKWIRE_SOAK_RATE sets the quotes/s in total over the three symbols (default 60). The soak runs its own
embedded broker (unless TICKWIRE_TEST_KAFKA_BOOTSTRAP names one) and prints, over time, the processes'
memory, the broker's memory and CPU, and what a fetch of the newest quotes costs (docs/embedded-broker.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import pytest
from redis.asyncio import Redis

from bench.broker_budget import newest_fetch_s
from deploy.embedded import EmbeddedBroker
from schemas.events import PartitionProgress
from schemas.topics import QUOTES_RAW, price_key, progress_key
from tests.conftest import TEST_PARTITIONS
from tests.helpers import eventually
from tests.integration.test_chaos import pipeline
from tickwire.topic_admin import ensure_topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("TICKWIRE_LONG_TESTS") != "1",
                       reason="a 30-minute soak: set TICKWIRE_LONG_TESTS=1 (TICKWIRE_SOAK_SECONDS to shorten it)"),
]

SOAK_S = float(os.environ.get("TICKWIRE_SOAK_SECONDS", "1800"))
RATE_PER_SYMBOL = max(1, round(float(os.environ.get("TICKWIRE_SOAK_RATE", "60")) / 3))
pytestmark.append(pytest.mark.timeout(SOAK_S + 600))  # the suite's 180 s limit is for ordinary tests
SAMPLE_S = max(5.0, SOAK_S / 60)
WARMUP_FRACTION = 0.2  # caches and pools fill first: growth is judged after this share of the run
MAX_GROWTH = 0.15  # RSS may drift this much over the measured part of the run (allocator noise), not more
STALE_S = 30.0  # the feed quotes every symbol several times a second: a price this old means prices stopped
CHECK_S = 2.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 1e6


class BrokerProbe:
    """The soak's own embedded broker: its memory and CPU, and the cost of fetching the newest quotes."""

    def __init__(self, bootstrap: str, pid: int | None) -> None:
        self.bootstrap = bootstrap
        self.proc = psutil.Process(pid) if pid else None
        if self.proc:
            self.proc.cpu_percent()  # the first call only starts the interval

    def rss_mb(self) -> float:
        return self.proc.memory_info().rss / 1e6 if self.proc else float("nan")

    def cpu_percent(self) -> float:
        """CPU since the last call, % of one core."""
        return self.proc.cpu_percent() if self.proc else float("nan")

    async def newest_fetch_ms(self, redis: Redis, app_id: str) -> tuple[float, float]:
        """A fetch of the newest quote the price stage finished, on its partition holding the most (ms), and the
        fetch wait the stage uses now (ms); from the stage's progress in Redis (Tansu answers no OffsetFetch)."""
        raw = await redis.hgetall(progress_key(app_id, QUOTES_RAW.name))
        progress = {int(f.decode().rsplit(":", 1)[1]): PartitionProgress.model_validate_json(v) for f, v in raw.items()}
        if not progress or max(p.offset for p in progress.values()) == 0:
            return float("nan"), float("nan")
        partition, newest = max(progress.items(), key=lambda item: item[1].offset)
        fetch_s, _ = await newest_fetch_s(self.bootstrap, QUOTES_RAW.name, newest.offset - 1, partition)
        return fetch_s * 1000, (newest.fetch_wait_s or float("nan")) * 1000


@asynccontextmanager
async def soak_broker(log_dir: Path) -> AsyncIterator[BrokerProbe]:
    external = os.environ.get("TICKWIRE_TEST_KAFKA_BOOTSTRAP")
    if external:
        await ensure_topics(external, TEST_PARTITIONS)
        yield BrokerProbe(external, None)
        return
    async with EmbeddedBroker(log_dir / "soak-broker") as broker:
        await ensure_topics(broker.bootstrap, TEST_PARTITIONS)
        yield BrokerProbe(broker.bootstrap, broker.process.pid)


async def test_soak_given_steady_load_keeps_memory_flat_and_the_oracle_holds(
    redis_url: str, redis: Redis, log_dir: Path
) -> None:
    async with soak_broker(log_dir) as broker, pipeline(broker.bootstrap, redis_url, log_dir, RATE_PER_SYMBOL) as p:
        await eventually(lambda: p.priced_after(redis, ""), 120, "prices", p.ingest, p.processor)
        # (seconds, processor MB, ingest MB, broker MB, broker CPU %, newest-quote fetch ms, stage's fetch wait ms)
        curve: list[tuple[float, ...]] = []
        started = last_sample = time.monotonic()
        seen: dict[str, tuple[bytes | None, float]] = {}  # symbol -> (its stored price, when it last changed)
        while (elapsed := time.monotonic() - started) < SOAK_S:
            assert p.processor.running and p.ingest.running, "a component exited during the soak"
            now = time.monotonic()
            for symbol, value in zip(p.symbols, await redis.mget([price_key(s) for s in p.symbols]), strict=True):
                if symbol not in seen or seen[symbol][0] != value:
                    seen[symbol] = (value, now)
                still_s = now - seen[symbol][1]
                assert still_s < STALE_S, f"{symbol}'s price stood still {still_s:.0f}s, {elapsed:.0f}s into the soak"
            if now - last_sample >= SAMPLE_S or not curve:
                last_sample = now
                sample = (elapsed, rss_mb(p.processor.pid), rss_mb(p.ingest.pid),  # type: ignore[arg-type]
                          broker.rss_mb(), broker.cpu_percent(), *await broker.newest_fetch_ms(redis, p.app_id))
                curve.append(sample)
                print("soak sample: t={:.0f}s processor={:.1f}MB ingest={:.1f}MB broker={:.0f}MB broker_cpu={:.0f}% "
                      "newest_fetch={:.0f}ms stage_fetch_wait={:.0f}ms".format(*sample), flush=True)
            await asyncio.sleep(CHECK_S)  # the period of the freshness check, not a synchronisation
        # The curve first: it is the soak's result even when the oracle then fails.
        points = "; ".join(",".join(f"{v:.1f}" for v in c) for c in curve)
        print("soak curve (s, processor MB, ingest MB, broker MB, broker CPU %, newest fetch ms, stage fetch wait ms):",
              points)
        report = await p.converged(redis, timeout=120)

    print(f"soak {SOAK_S:.0f}s at {RATE_PER_SYMBOL * 3} quotes/s: {report.summary()}")
    measured = [c for c in curve if c[0] >= SOAK_S * WARMUP_FRACTION]
    for column, name in ((1, "processor"), (2, "ingest")):
        first, last = measured[0][column], max(c[column] for c in measured[-3:])
        assert last <= first * (1 + MAX_GROWTH), f"{name} memory grew from {first:.1f} to {last:.1f} MB"
