"""Soak: the pipeline at one rate for a long time, a report row every few minutes, then the consistency oracle.

A row (every ``soak_report_s``): quotes/s in (the feed generated) and out (the processor finished), each
consumer group's lag, tick→Redis p50/p99 of the sampled quotes stamped since the row before, RSS of every
process, and the broker's disk. At the end the feed pauses, the pipeline drains, and the oracle
(``tickwire check``) compares Redis and the latest-price table with what the topics say.
:mod:`bench.soak_report` judges the result: an hour's soak compares RSS with its value at 10 minutes and
p99 over the last 5 minutes with the first 5; a shorter soak uses the same shares of its length.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench.config import BenchConfig
from bench.disk import BrokerDisk, retention_bound_bytes
from bench.lag import LagReader
from bench.probe import LatencyProbe
from bench.resources import ResourceSampler
from bench.stack import BenchStack, Counts
from bench.stats import latency_summary
from consumers.consistency import check
from schemas.topics import PROCESSOR_STATS_KEY
from tickwire.topic_admin import Retention

MIB = 2**20
# An hour's soak: RSS against its value at 10 minutes, p99 of the first and last 5 minutes; these shares of a
# shorter one (a 2-minute smoke test: 20 s and 10 s).
BASELINE_MAX_S, BASELINE_SHARE = 600.0, 1 / 6
WINDOW_MAX_S, WINDOW_SHARE = 300.0, 1 / 12
ARRIVAL_GRACE_S = 5.0  # a row reports the quotes stamped up to this long before it: they have arrived
POLL_S = 1.0  # between two checks that every process is alive
ORACLE_SETTLE_S = 30.0  # how long the oracle reads on and compares again while the last writes land


def scaled(soak_s: float) -> tuple[float, float]:
    """(when RSS is taken as the baseline, how long the first and last p99 windows are), in seconds."""
    return min(BASELINE_MAX_S, soak_s * BASELINE_SHARE), min(WINDOW_MAX_S, soak_s * WINDOW_SHARE)


def row_ends(soak_s: float, every_s: float) -> list[float]:
    """Seconds into the soak at which a row is reported: every ``every_s``, and at the end."""
    return [min(soak_s, k * every_s) for k in range(1, math.ceil(soak_s / every_s) + 1)]


def kept_from(began_ns: int, cut_ns: int, window_ns: int, first_taken: bool) -> int:
    """The oldest exchange time a soak still needs once a row is cut at ``cut_ns`` (an hour of samples adds up):
    the first window's until it is summarised, then the last ``window_ns``, which the final check reads back
    from the end (always after the last cut)."""
    return max(began_ns, cut_ns - window_ns) if first_taken else began_ns


class SoakRows:
    """Takes the report rows of one soak (see the module doc) and keeps what the checks need."""

    def __init__(self, stack: BenchStack, probe: LatencyProbe, sampler: ResourceSampler, lag: LagReader,
                 window_s: float) -> None:
        self.stack, self.probe, self.sampler, self.lag = stack, probe, sampler, lag
        self.stream_topics = {t.name for t in stack.topics if not t.compacted}
        self.rows: list[dict[str, Any]] = []
        self.began = self.began_ns = 0
        self.window_ns = int(window_s * 1e9)
        self.first: dict[str, Any] | None = None  # tick→Redis over the first window, once it has arrived
        self._previous: Counts | None = None
        self._cut_ns = 0

    def start(self, counts: Counts) -> None:
        """The soak's rate is on from now."""
        self.began, self.began_ns = counts.at, time.time_ns()
        self._previous, self._cut_ns = counts, self.began_ns

    def disk(self) -> BrokerDisk:
        """The broker's disk now."""
        broker = self.stack.broker
        assert broker is not None
        return BrokerDisk.read(broker.data_dir, broker.log_dirs, self.stream_topics)

    async def take(self) -> dict[str, Any]:
        """One row, printed and kept."""
        assert self._previous is not None
        counts = await self.stack.counts()
        cut_ns = time.time_ns() - int(ARRIVAL_GRACE_S * 1e9)
        latency = latency_summary(await self.probe.window("tick_to_redis", self._cut_ns, cut_ns))
        first_end = self.began_ns + self.window_ns
        if self.first is None and cut_ns >= first_end:
            self.first = latency_summary(await self.probe.window("tick_to_redis", self.began_ns, first_end))
        self.probe.forget_before(kept_from(self.began_ns, cut_ns, self.window_ns, self.first is not None))
        span = counts.at - self._previous.at
        disk = self.disk()
        row = {"t_s": round(counts.at - self.began, 1),
               "in_per_s": round((counts.sent - self._previous.sent) / span, 1),
               "out_per_s": round((counts.processed - self._previous.processed) / span, 1),
               "lag": await self.lag.lag(), "tick_to_redis": latency,
               "rss_mib": {name: round(rss / MIB, 1) for name, rss in self.sampler.sample_now().items()},
               "disk_mib": round(disk.total / MIB, 1), "stream_disk_mib": round(disk.stream / MIB, 1)}
        self.rows.append(row)
        self._previous, self._cut_ns = counts, cut_ns
        print(f"  soak {clock(row['t_s'])} in {row['in_per_s']:.0f}/s out {row['out_per_s']:.0f}/s lag {row['lag']} "
              f"tick->redis p50/p99 {latency['p50_ms']}/{latency['p99_ms']} ms rss {row['rss_mib']} "
              f"disk {row['disk_mib']} MiB", flush=True)
        return row

    def rss_at(self, seconds: float) -> dict[str, float]:
        """Every process's RSS (MiB) in the sampler's reading nearest ``seconds`` into the soak."""
        at = self.began + seconds
        _, sample = min(self.sampler.rss, key=lambda reading: abs(reading[0] - at))
        return {name: round(rss / MIB, 1) for name, rss in sample.items()}


async def run_soak(runner: Any, cfg: BenchConfig) -> dict[str, Any]:  # runner: bench.steps.StepRunner
    """Run ``cfg.soak_rate`` for ``cfg.soak_s`` seconds on the runner's stack, then drain and check it."""
    stack: BenchStack = runner.stack
    assert stack.bootstrap is not None and stack.redis is not None
    settings = stack.settings
    retention = Retention.of(settings)
    baseline_s, window_s = scaled(cfg.soak_s)
    lag = LagReader(stack.bootstrap)
    await lag.start()
    try:
        soak = SoakRows(stack, runner.probe, runner.sampler, lag, window_s)
        start, stats_before = await stack.counts(), counted(await stack.redis.hgetall(PROCESSOR_STATS_KEY))
        await stack.set_rate(cfg.soak_rate)
        soak.start(start)
        for row_end in row_ends(cfg.soak_s, cfg.soak_report_s):
            while time.monotonic() < soak.began + row_end:
                await asyncio.sleep(min(POLL_S, soak.began + row_end - time.monotonic()))  # poll between rows
                stack.check_alive()
            await soak.take()
        await stack.set_rate(0)
        end_ns = time.time_ns()
        end, settled = await stack.wait_until_drained(cfg.drain_timeout_s)
        last = latency_summary(await runner.probe.window("tick_to_redis", end_ns - soak.window_ns, end_ns))
        first = soak.first or latency_summary(
            await runner.probe.window("tick_to_redis", soak.began_ns, soak.began_ns + soak.window_ns))
        stats_after = counted(await stack.redis.hgetall(PROCESSOR_STATS_KEY))
        print("  soak: the feed paused, the pipeline drained; the oracle reads the topics", flush=True)
        report = await check(stack.bootstrap, stack.redis, None, settings.quote_age_limit_s,
                             settings.processor_app_id, settle_s=ORACLE_SETTLE_S)
        disk = soak.disk()
    finally:
        await lag.stop()
    return {
        "rate": cfg.soak_rate, "seconds": cfg.soak_s, "report_every_s": cfg.soak_report_s,
        "baseline_s": baseline_s, "window_s": window_s, "rows": soak.rows,
        "rss_baseline_mib": soak.rss_at(baseline_s),
        "tick_to_redis_first": first, "tick_to_redis_last": last,
        "retention": {"hours": retention.hours, "mb_per_partition": retention.mb_per_partition,
                      "partitions": settings.topic_partitions,
                      "bound_mib": round(retention_bound_bytes(stack.topics, settings.topic_partitions,
                                                               retention) / MIB, 1)},
        "disk_end": {"total_mib": round(disk.total / MIB, 1), "stream_mib": round(disk.stream / MIB, 1),
                     "topics_mib": {t: round(b / MIB, 1) for t, b in disk.topics.items()}},
        "totals": {"quotes_in": end.sent - start.sent,
                   **{name: stats_after[name] - stats_before[name] for name in stats_after},
                   "lost": (end.backlog - start.backlog) if settled else None},
        "oracle": {"ok": report.ok, "mismatches": len(report.mismatches),
                   "real_mismatches": len(report.real_mismatches), "values_checked": report.values_checked,
                   "summary": report.summary(), "examples": [str(m) for m in report.mismatches[:10]]},
    }


def counted(stats: dict[bytes, bytes]) -> dict[str, int]:
    """A reading of the processor's counters (``tickwire:stats:processor``): quotes accepted, prices out
    (published to Redis: newer than the stored price) and quotes rejected, for any reason."""
    return {"accepted": int(stats.get(b"accepted", 0)), "prices_out": int(stats.get(b"published", 0)),
            "rejected": sum(int(v) for k, v in stats.items() if k.startswith(b"rejected."))}


def clock(seconds: float) -> str:
    """``m:ss``."""
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
