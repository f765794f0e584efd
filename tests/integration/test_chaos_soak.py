"""Soak: the whole pipeline at a moderate rate for TICKWIRE_SOAK_SECONDS (default 30 min) keeps its memory flat,
never lets a symbol's price stand still for STALE_S, and the oracle holds at the end. Long: TICKWIRE_LONG_TESTS=1."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil
import pytest
from redis.asyncio import Redis

from schemas.topics import price_key
from tests.helpers import eventually
from tests.integration.test_chaos import pipeline

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("TICKWIRE_LONG_TESTS") != "1",
                       reason="a 30-minute soak: set TICKWIRE_LONG_TESTS=1 (TICKWIRE_SOAK_SECONDS to shorten it)"),
]

SOAK_S = float(os.environ.get("TICKWIRE_SOAK_SECONDS", "1800"))
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


async def test_soak_given_steady_load_keeps_memory_flat_and_the_oracle_holds(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    async with pipeline(kafka_bootstrap, redis_url, log_dir) as p:
        await eventually(lambda: p.priced_after(redis, ""), 120, "prices", p.ingest, p.processor)
        curve: list[tuple[float, float, float]] = []  # (seconds, processor MB, ingest MB)
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
                curve.append((elapsed, rss_mb(p.processor.pid), rss_mb(p.ingest.pid)))  # type: ignore[arg-type]
            await asyncio.sleep(CHECK_S)  # the period of the freshness check, not a synchronisation
        # The curve first: it is the soak's result even when the oracle then fails.
        points = "; ".join(f"{t:.0f},{a:.1f},{b:.1f}" for t, a, b in curve)
        print(f"memory curve (s, processor MB, ingest MB): {points}")
        report = await p.converged(redis, timeout=120)

    print(f"soak {SOAK_S:.0f}s: {report.summary()}")
    measured = [c for c in curve if c[0] >= SOAK_S * WARMUP_FRACTION]
    for column, name in ((1, "processor"), (2, "ingest")):
        first, last = measured[0][column], max(c[column] for c in measured[-3:])
        assert last <= first * (1 + MAX_GROWTH), f"{name} memory grew from {first:.1f} to {last:.1f} MB"
