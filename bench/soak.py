"""Soak: the pipeline for a long time, at one rate or through a trading day, a report row every few minutes,
then the consistency oracle.

A day (``--day``, :mod:`bench.day_shape`), after a pre-market at the lull's rate, follows the day's rate from
phase to phase, fills a few positions every ``position_change_every_s`` and injects its feed faults
(:mod:`bench.soak_driver`). A row (every
``soak_report_s``): the target rate of its window, quotes/s in (the feed generated) and out (the processor
finished), each consumer group's lag, tick→Redis p50/p99 of the sampled quotes stamped since the row before,
the API's ``/health`` answers during it, RSS of every process, the broker's disk, and the faults it overlaps.
At the end the feed halts every symbol (the close), the pipeline drains, ``prices`` is compared with
``quotes.raw`` (duplicates and gaps, :mod:`bench.price_audit`) and the oracle (``tickwire check``) compares
Redis and the latest-price table with what the topics say. :mod:`bench.soak_report` judges the result: an
hour's soak compares RSS with its value at 10 minutes and p99 over the last 5 minutes with the first 5; a
shorter soak uses the same shares.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench.config import BenchConfig
from bench.day_plan import soak_actions
from bench.day_shape import DayShape
from bench.disk import BrokerDisk, retention_bound_bytes
from bench.health import HealthSampler, status_counts
from bench.lag import LagReader
from bench.position_changes import PositionChanges
from bench.positions import BenchPosition, BookPublisher
from bench.price_audit import audit_prices
from bench.probe import LatencyProbe
from bench.quote_flow import flow_totals, read_flow
from bench.resources import ResourceSampler
from bench.soak_driver import FAULT_GRACE_S, FaultWindow, SoakDriver
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
PHASE_OVERLAP_S = 1.0  # a row names the phases it spent more than this in (not one it touched at its end)
SOAK_DRAIN_S = 120.0  # a day can end with a backlog (its closing burst, a fault's repair): let it finish
# A deployment runs before the open: a day's pipeline gets this long at the lull's rate first (not counted), so
# the opening burst meets warm processes, not a JIT-cold broker and a producer still fetching metadata.
PRE_MARKET_S = 30.0


def soak_shape(cfg: BenchConfig) -> DayShape:
    """The soak's rate over time: the day's shape, or one rate throughout."""
    return DayShape(cfg.day_quotes, cfg.soak_s) if cfg.day_quotes else DayShape.flat(cfg.soak_rate, cfg.soak_s)


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
                 window_s: float, shape: DayShape, health: HealthSampler | None = None) -> None:
        self.stack, self.probe, self.sampler, self.lag = stack, probe, sampler, lag
        self.shape, self.health = shape, health
        self.stream_topics = {t.name for t in stack.topics if not t.compacted}
        self.rows: list[dict[str, Any]] = []
        self.began = self.began_ns = 0
        self.window_ns = int(window_s * 1e9)
        self.first: dict[str, Any] | None = None  # tick→Redis over the first window, once it has arrived
        self._previous: Counts | None = None
        self._cut_ns = self._row_ns = 0

    def start(self, counts: Counts) -> None:
        """The soak's rate is on from now."""
        self.began, self.began_ns = counts.at, time.time_ns()
        self._previous, self._cut_ns = counts, self.began_ns
        self._row_ns = self.began_ns

    def disk(self) -> BrokerDisk:
        """The broker's disk now."""
        broker = self.stack.broker
        assert broker is not None
        return BrokerDisk.read(broker.data_dir, broker.log_dirs, self.stream_topics)

    async def take(self, faults: list[FaultWindow]) -> dict[str, Any]:
        """One row, printed and kept; ``faults`` are the faults injected so far."""
        assert self._previous is not None
        counts = await self.stack.counts()
        row_ns = time.time_ns()
        cut_ns = time.time_ns() - int(ARRIVAL_GRACE_S * 1e9)
        latency = latency_summary(await self.probe.window("tick_to_redis", self._cut_ns, cut_ns))
        first_end = self.began_ns + self.window_ns
        if self.first is None and cut_ns >= first_end:
            self.first = latency_summary(await self.probe.window("tick_to_redis", self.began_ns, first_end))
        self.probe.forget_before(kept_from(self.began_ns, cut_ns, self.window_ns, self.first is not None))
        span = counts.at - self._previous.at
        disk = self.disk()
        t0, t1 = self._previous.at - self.began, counts.at - self.began
        health = self.health.between(self._row_ns, row_ns) if self.health else []
        row = {"t_s": round(t1, 1),
               "phase": "/".join(p.name for p in self.shape.phases
                                 if min(t1, p.end_s) - max(t0, p.start_s) > PHASE_OVERLAP_S),
               "target_per_s": round(self.shape.target_rate(t0, t1), 1),
               "in_per_s": round((counts.sent - self._previous.sent) / span, 1),
               "out_per_s": round((counts.processed - self._previous.processed) / span, 1),
               "lag": await self.lag.lag(), "tick_to_redis": latency,
               "rss_mib": {name: round(rss / MIB, 1) for name, rss in self.sampler.sample_now().items()},
               "disk_mib": round(disk.total / MIB, 1), "stream_disk_mib": round(disk.stream / MIB, 1),
               "health": status_counts(health),
               "faults": [w.fault for w in faults if w.covers(self._row_ns, row_ns, row_ns)]}
        self.rows.append(row)
        self._previous, self._cut_ns, self._row_ns = counts, cut_ns, row_ns
        print(f"  soak {clock(row['t_s'])} {row['phase']} target {row['target_per_s']:.0f}/s "
              f"in {row['in_per_s']:.0f}/s out {row['out_per_s']:.0f}/s lag {row['lag']} "
              f"tick->redis p50/p99 {latency['p50_ms']}/{latency['p99_ms']} ms health {row['health'] or '-'} "
              f"rss {row['rss_mib']} disk {row['disk_mib']} MiB"
              + (f" during {', '.join(row['faults'])}" if row["faults"] else ""), flush=True)
        return row

    def rss_at(self, seconds: float) -> dict[str, float]:
        """Every process's RSS (MiB) in the sampler's reading nearest ``seconds`` into the soak."""
        at = self.began + seconds
        _, sample = min(self.sampler.rss, key=lambda reading: abs(reading[0] - at))
        return {name: round(rss / MIB, 1) for name, rss in sample.items()}


async def pre_market(stack: BenchStack, shape: DayShape, drain_s: float) -> None:
    """Run the pipeline ``PRE_MARKET_S`` at the day's lowest rate, then let it drain: the day's counts start at
    rest (a pause of a few seconds, far from what the ingest takes for a mute)."""
    rate = min(phase.rate for phase in shape.phases)
    print(f"  soak: pre-market, {PRE_MARKET_S:.0f}s at {rate:,.0f}/s (not counted)", flush=True)
    await stack.set_rate(rate)
    await asyncio.sleep(PRE_MARKET_S)  # a stretch of the load's shape, not a wait for a condition
    await stack.set_rate(0)
    await stack.wait_until_drained(drain_s)


async def run_soak(runner: Any, cfg: BenchConfig,  # runner: bench.steps.StepRunner
                   book: list[BenchPosition] | None = None) -> dict[str, Any]:
    """Run the soak's shape (``cfg.soak_rate``, or ``cfg.day_quotes`` as a day) for ``cfg.soak_s`` seconds on the
    runner's stack, with a day's position changes (of ``book``) and faults, then drain and check it."""
    stack: BenchStack = runner.stack
    assert stack.bootstrap is not None and stack.redis is not None
    settings = stack.settings
    retention = Retention.of(settings)
    baseline_s, window_s = scaled(cfg.soak_s)
    shape = soak_shape(cfg)
    lag = LagReader(stack.bootstrap)
    health = HealthSampler(f"{stack.api_url}/health", cfg.health_every_s) if stack.api_url else None
    publisher = BookPublisher(stack.bootstrap) if book and cfg.position_change_every_s else None
    changes = PositionChanges(book, publisher, cfg.position_change_count, cfg.seed) if book and publisher else None
    driver = SoakDriver(stack, soak_actions(shape, cfg.position_change_every_s, cfg.faults), changes)
    await lag.start()
    if publisher:
        await publisher.start()
    try:
        if cfg.day_quotes:
            await pre_market(stack, shape, max(cfg.drain_timeout_s, SOAK_DRAIN_S))
        soak = SoakRows(stack, runner.probe, runner.sampler, lag, window_s, shape, health)
        start, stats_before = await stack.counts(), counted(await stack.redis.hgetall(PROCESSOR_STATS_KEY))
        flow_before = await read_flow(stack.redis, lag.consumer, start)
        if health:
            health.start()
        soak.start(start)
        for row_end in row_ends(cfg.soak_s, cfg.soak_report_s):
            while (now := time.monotonic()) < soak.began + row_end:
                await driver.run_due(now - soak.began)
                stack.check_alive()
                next_at = min(row_end, driver.next_at if driver.next_at is not None else row_end)
                await asyncio.sleep(max(0.0, min(POLL_S, soak.began + next_at - time.monotonic())))  # poll
            await soak.take(await driver.windows())
        await stack.set_rate(0)
        await stack.close_market()  # the end of the day: paused but not halted, the feed would look mute
        end_ns, began = time.time_ns(), time.monotonic()
        end, settled = await stack.wait_until_drained(max(cfg.drain_timeout_s, SOAK_DRAIN_S))
        ended = {"drain": round(time.monotonic() - began, 1)}
        if health:
            await health.stop()
        faults = await driver.windows()
        flow = flow_totals(flow_before, await read_flow(stack.redis, lag.consumer, end), settled)
        last = latency_summary(await runner.probe.window("tick_to_redis", end_ns - soak.window_ns, end_ns))
        first = soak.first or latency_summary(
            await runner.probe.window("tick_to_redis", soak.began_ns, soak.began_ns + soak.window_ns))
        stats_after = counted(await stack.redis.hgetall(PROCESSOR_STATS_KEY))
        print(f"  soak: the feed closed, the pipeline drained in {ended['drain']}s; prices against quotes.raw",
              flush=True)
        began = time.monotonic()
        audit = await audit_prices(stack.bootstrap, settings.quote_age_limit_s)
        ended["price_audit"] = round(time.monotonic() - began, 1)
        print(f"  soak: {audit.quotes_read:,} quotes and {audit.prices_read:,} prices compared in "
              f"{ended['price_audit']}s; the oracle reads the topics", flush=True)
        began = time.monotonic()
        report = await check(stack.bootstrap, stack.redis, None, settings.quote_age_limit_s,
                             settings.processor_app_id, settle_s=ORACLE_SETTLE_S)
        ended["oracle"] = round(time.monotonic() - began, 1)
        disk = soak.disk()
    finally:
        if health:
            await health.stop()
        if publisher:
            await publisher.stop()
        await lag.stop()
    return {
        "rate": cfg.soak_rate, "seconds": cfg.soak_s, "report_every_s": cfg.soak_report_s,
        "end_phase_s": ended,  # how long the drain, the prices audit and the oracle took
        "day": day_dict(shape) if cfg.day_quotes else None,
        "baseline_s": baseline_s, "window_s": window_s, "rows": soak.rows,
        "rss_baseline_mib": soak.rss_at(baseline_s),
        "tick_to_redis_first": first, "tick_to_redis_last": last,
        "retention": {"hours": retention.hours, "mb_per_partition": retention.mb_per_partition,
                      "partitions": settings.topic_partitions,
                      "bound_mib": round(retention_bound_bytes(stack.topics, settings.topic_partitions,
                                                               retention) / MIB, 1)},
        "disk_end": {"total_mib": round(disk.total / MIB, 1), "stream_mib": round(disk.stream / MIB, 1),
                     "topics_mib": {t: round(b / MIB, 1) for t, b in disk.topics.items()}},
        "faults": [fault_dict(w, soak.began_ns) for w in faults], "fault_grace_s": FAULT_GRACE_S,
        "health": health_dict(health, faults, soak.began_ns, cfg.health_every_s) if health else None,
        "totals": {**flow, **{name: stats_after[name] - stats_before[name] for name in stats_after},
                   "position_changes": changes.published if changes else 0},
        "price_audit": {"quotes_read": audit.quotes_read, "prices_read": audit.prices_read,
                        "expected": audit.expected, "duplicates": audit.duplicates, "gaps": audit.gaps},
        "oracle": {"ok": report.ok, "mismatches": len(report.mismatches),
                   "real_mismatches": len(report.real_mismatches), "values_checked": report.values_checked,
                   "summary": report.summary(), "examples": [str(m) for m in report.mismatches[:10]]},
    }


def day_dict(shape: DayShape) -> dict[str, Any]:
    """The day's size and phases, for the report."""
    return {"quotes": shape.quotes, "seconds": shape.seconds, "average_per_s": round(shape.average, 1),
            "phases": [{"name": p.name, "start_s": round(p.start_s, 1), "end_s": round(p.end_s, 1),
                        "rate": round(p.rate, 1)} for p in shape.phases]}


def fault_dict(window: FaultWindow, began_ns: int) -> dict[str, Any]:
    """A fault with its times as seconds into the soak."""
    return {"fault": window.fault, "began_s": round((window.began_ns - began_ns) / 1e9, 1),
            "ended_s": None if window.ended_ns is None else round((window.ended_ns - began_ns) / 1e9, 1),
            "recovered": window.recovered, "detail": window.detail}


def health_dict(health: HealthSampler, faults: list[FaultWindow], began_ns: int, every_s: float) -> dict[str, Any]:
    """Every ``/health`` answer of the soak, and those outside the faults' windows by status."""
    now = time.time_ns()
    outside = [s for s in health.samples if not any(w.covers(s.at_ns, s.at_ns + 1, now) for w in faults)]
    return {"every_s": every_s, "counts": status_counts(health.samples), "outside_faults": status_counts(outside),
            "not_healthy": [{"t_s": round((s.at_ns - began_ns) / 1e9, 1), "status": s.status,
                             "during": [w.fault for w in faults if w.covers(s.at_ns, s.at_ns + 1, now)],
                             "problems": list(s.problems)} for s in health.samples if s.status != "healthy"]}


def counted(stats: dict[bytes, bytes]) -> dict[str, int]:
    """A reading of the processor's counters (``tickwire:stats:processor``): quotes accepted, prices out
    (published to Redis: newer than the stored price) and quotes rejected, for any reason."""
    return {"accepted": int(stats.get(b"accepted", 0)), "prices_out": int(stats.get(b"published", 0)),
            "rejected": sum(int(v) for k, v in stats.items() if k.startswith(b"rejected."))}


def clock(seconds: float) -> str:
    """``m:ss``."""
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
