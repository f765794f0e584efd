"""The rate series: each step runs one steady rate, then a burst, then drains, and is judged sustainable or not.

A step: warm up at the rate, measure for ``measure_s`` (throughput, backlog over time, CPU, memory), fire a
burst of ``burst_factor`` x for ``burst_s`` on top, watch it clear, pause the feed and let the design drain.
Latencies are judged after the drain, on the quotes the feed stamped during the window. A rate is
sustainable when the feed really offered it, the design finished as many quotes as arrived, its backlog
did not grow, and nothing was lost but what its burst overflowed (reported with the burst).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.config import BenchConfig
from bench.hops import Buckets, difference, summarize
from bench.probe import METRICS, LatencyProbe
from bench.resources import ResourceSampler, cpu_percent
from bench.stack import BenchStack, Counts
from bench.stats import latency_summary, slope

SAMPLE_EVERY_S = 0.25
MAX_RECOVERY_S = 10.0
REFINE_DRAIN_S = 90.0
# Tolerances of the verdict: the feed offers >= 95% of the rate, the design finishes >= 90% of what came
# (a sanity bound: counters move per batch, so a short window is noisy; the backlog slope decides),
# and the backlog grows by less than 2% of the rate per second (a few batches of slack).
FEED_SHORTFALL = 0.95
KEEP_UP = 0.90
GROWTH = 0.02


@dataclass
class StepResult:
    """What one rate step measured (JSON-ready through ``asdict``)."""

    design: str
    rate: int
    generated_per_s: float = 0.0
    throughput_per_s: float = 0.0
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    hops: dict[str, dict[str, Any]] = field(default_factory=dict)  # the processor's own view, per hop
    burst: dict[str, Any] | None = None
    backlog_growth_per_s: float = 0.0
    lost: int | None = None
    overflow: int = 0
    steady_overflow: int = 0  # of ``overflow``, what the steady rate overflowed (before its burst)
    drained: bool = True
    sustained: bool = False
    cpu_percent: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_1k_quotes: dict[str, float] = field(default_factory=dict)  # CPU cost, robust to a busy machine
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON results."""
        return asdict(self)


class StepRunner:
    """Runs steps against one started stack."""

    def __init__(self, stack: BenchStack, probe: LatencyProbe, sampler: ResourceSampler, cfg: BenchConfig) -> None:
        self.stack = stack
        self.probe = probe
        self.sampler = sampler
        self.cfg = cfg
        # The pipeline's processor histograms (bench.hops.scrape), to split each step's latency by hop.
        self.hop_scraper: Callable[[], Awaitable[Buckets]] | None = None
        self._stepped = False

    async def series(self, rates: tuple[int, ...]) -> list[StepResult]:
        """The rate series on this one stack (see :func:`run_series`)."""
        return await run_series(rates, self.cfg.refine, self.step, self.stack.wait_until_drained)

    async def step(self, rate: int) -> StepResult:
        """One steady rate, one burst, one drain."""
        cfg, stack = self.cfg, self.stack
        result = StepResult(stack.design, rate)
        start = await stack.counts()
        await stack.set_rate(rate)
        # Let batching and consumers settle at the new rate; the first step also lets the start-up settle
        # (the positions' subscriptions, the first table flushes).
        await asyncio.sleep(cfg.warmup_s + (cfg.first_warmup_s if not self._stepped else 0.0))
        self._stepped = True
        cpu_before, began, window_start = self.sampler.cpu_seconds(), time.monotonic(), time.time_ns()
        first = await stack.counts()
        hops_before = await self.hop_scraper() if self.hop_scraper else {}
        points = await self._watch(cfg.measure_s, began)
        last = await stack.counts()
        result.steady_overflow = last.overflow - start.overflow
        if self.hop_scraper:
            result.hops = summarize(difference(await self.hop_scraper(), hops_before))
        window_end, ended = time.time_ns(), time.monotonic()
        result.cpu_percent = cpu_percent(cpu_before, self.sampler.cpu_seconds(), ended - began)
        result.peak_rss_mb = self.sampler.peak_rss_mb(began, ended)
        span = last.at - first.at
        result.generated_per_s = round((last.sent - first.sent) / span, 1)
        result.throughput_per_s = round((last.processed - first.processed) / span, 1)
        result.backlog_growth_per_s = round(slope([(t, b) for t, b in points]), 1)
        if result.throughput_per_s > 0:
            result.cpu_ms_per_1k_quotes = {name: round(pct * 10_000 / result.throughput_per_s, 1)
                                           for name, pct in result.cpu_percent.items()}

        burst_start = time.time_ns()
        burst = await self._burst(rate, last) if cfg.burst_factor > 1 else None
        await stack.set_rate(0)
        end, settled = await stack.wait_until_drained(cfg.drain_timeout_s)
        result.overflow = end.overflow - start.overflow
        if burst is not None:
            burst["overflow"] = end.overflow - last.overflow  # the burst's own, told apart from the steady rate's
        result.drained = settled
        result.lost = max(end.backlog - start.backlog, 0) if settled else None

        result.latency = {m: latency_summary(await self.probe.window(m, window_start, window_end))
                          for m in METRICS}
        if burst is not None:
            watch_end = burst_start + int(cfg.burst_watch_s * 1e9)
            burst.update({m: latency_summary(await self.probe.window(m, burst_start, watch_end))
                          for m in ("tick_to_redis", "tick_to_pnl")})
            result.burst = burst
        judge(result)
        return result

    async def _watch(self, seconds: float, began: float) -> list[tuple[float, int]]:
        points = []
        while time.monotonic() - began < seconds:
            await asyncio.sleep(SAMPLE_EVERY_S)  # sampling period of the backlog
            self.stack.check_alive()
            counts = await self.stack.counts()
            points.append((counts.at - began, counts.backlog))
        return points

    async def _burst(self, rate: int, before: Counts) -> dict[str, Any]:
        """Fire the burst; report the peak backlog and how long after the burst the backlog was back to normal
        (not counting what the ingest dropped)."""
        cfg = self.cfg
        normal = before.backlog + max(rate * GROWTH, 50)
        await self.stack.burst(cfg.burst_factor, cfg.burst_s)
        fired = time.monotonic()
        peak, recovered_s = before.backlog, None
        while time.monotonic() - fired < cfg.burst_s + MAX_RECOVERY_S:
            await asyncio.sleep(SAMPLE_EVERY_S / 2)  # sampling period of the backlog
            self.stack.check_alive()
            counts = await self.stack.counts()
            # Quotes the ingest dropped never arrive: they are the overflow column, not a backlog to recover from.
            backlog = counts.backlog - (counts.overflow - before.overflow)
            peak = max(peak, backlog)
            after_burst = counts.at - fired - cfg.burst_s
            if after_burst >= 0 and backlog <= normal:
                recovered_s = round(after_burst, 2)
                break
        return {"factor": cfg.burst_factor, "seconds": cfg.burst_s, "peak_backlog": peak,
                "recovered_s": recovered_s}

def judge(result: StepResult) -> None:
    """Set ``sustained`` and the note saying why not (or what its burst lost)."""
    notes = []
    offered = result.generated_per_s >= FEED_SHORTFALL * result.rate
    if not offered:
        notes.append(f"feed generated only {result.generated_per_s:.0f}/s")
    keeps_up = result.throughput_per_s >= KEEP_UP * result.generated_per_s
    bounded = result.backlog_growth_per_s <= max(GROWTH * result.rate, 20)
    if not (keeps_up and bounded):
        notes.append(f"backlog grows {result.backlog_growth_per_s:.0f}/s")
    # The steady rate is judged: what only its 10x burst overflowed is the burst's (the bounded ingest queue
    # is sized for a burst at 1,000/s), reported, and judged by the burst check at that rate.
    burst_overflow = result.burst.get("overflow", 0) if result.burst else 0
    steady_lost = max((result.lost or 0) - burst_overflow, result.steady_overflow)
    if steady_lost > 0:
        notes.append(f"lost {result.lost} (ingest overflow {result.overflow})")
    elif result.lost:
        notes.append(f"steady rate lost nothing; its burst overflowed the ingest queue by {burst_overflow}")
    if not result.drained:
        notes.append("did not drain")
    result.sustained = offered and keeps_up and bounded and steady_lost <= 0 and result.drained
    result.note = "; ".join(notes)


Drain = Callable[[float], Awaitable[tuple[Counts, bool]]]


async def run_series(rates: tuple[int, ...], refine: int, step: Callable[[int], Awaitable[StepResult]],
                     drain: Drain) -> list[StepResult]:
    """Ascending rates until one is not sustained; then ``refine`` rates between the last pass and it.

    ``drain`` (the stack's) lets an overloaded step's backlog clear before the in-between rate.
    """
    results: list[StepResult] = []
    for rate in sorted(rates):
        result = await step(rate)
        results.append(result)
        print(f"  {result.design} {rate}/s: {describe(result)}", flush=True)
        if not result.sustained:
            break
    passed = [r.rate for r in results if r.sustained]
    failed = [r.rate for r in results if not r.sustained]
    if refine and passed and failed and not results[-1].drained:
        # An overloaded step can leave a long backlog: the in-between rate must start from empty.
        _, drained = await drain(REFINE_DRAIN_S)
        if not drained:
            return sorted(results, key=lambda r: r.rate)
    for _ in range(refine):
        if not passed or not failed:
            break
        rate = _between(max(passed), min(failed))
        if rate in (max(passed), min(failed)):
            break
        result = await step(rate)
        results.append(result)
        print(f"  {result.design} {rate}/s: {describe(result)}", flush=True)
        (passed if result.sustained else failed).append(rate)
    return sorted(results, key=lambda r: r.rate)


def describe(result: StepResult) -> str:
    """One progress line."""
    redis = result.latency.get("tick_to_redis", {})
    return (f"{'OK ' if result.sustained else 'NO '} done {result.throughput_per_s:.0f}/s "
            f"(fed {result.generated_per_s:.0f}/s), tick->redis p50 {redis.get('p50_ms')} "
            f"p99 {redis.get('p99_ms')} ms {result.note}")


def _between(low: int, high: int) -> int:
    # Geometric middle, rounded to a readable step.
    middle = math.sqrt(low * high)
    unit = 500 if middle >= 2_000 else 100
    return int(round(middle / unit) * unit)
