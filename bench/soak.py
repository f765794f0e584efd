"""Soak: one rate for a long time; memory of every process over time, and whether any grows without bound."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.config import BenchConfig
from bench.resources import MB
from bench.stats import latency_summary, slope

# RSS growth (MiB per minute, over the soak's second half) above which a process is called growing.
GROWTH_LIMIT_MIB_PER_MIN = 1.0
# The embedded broker keeps every record in memory (Tansu's memory storage, no retention): it must grow.
GROWS_BY_DESIGN = {"broker": "Tansu's memory storage keeps every record (no retention or compaction)"}
# Not tickwire: the load generator and the measuring process (which keeps every latency sample).
TOOLS = {"feed": "the local feed keeps a bounded history for its REST API",
         "bench": "the benchmark keeps every latency sample"}


async def run_soak(runner: Any, cfg: BenchConfig) -> dict[str, Any]:  # runner: bench.steps.StepRunner
    """Run ``cfg.soak_rate`` for ``cfg.soak_s`` seconds, sampling every ``cfg.soak_sample_s``."""
    stack, probe, sampler = runner.stack, runner.probe, runner.sampler
    start = await stack.counts()
    await stack.set_rate(cfg.soak_rate)
    began, previous, previous_ns = time.monotonic(), start, time.time_ns()
    samples = []
    while time.monotonic() - began < cfg.soak_s:
        await asyncio.sleep(cfg.soak_sample_s)  # sampling period of the soak
        stack.check_alive()
        counts, now_ns = await stack.counts(), time.time_ns()
        # Quotes stamped in the previous interval have had at least one interval to arrive.
        latency = latency_summary(await probe.window("tick_to_redis",
                                                     previous_ns - int(cfg.soak_sample_s * 1e9), previous_ns))
        samples.append({"t": round(time.monotonic() - began, 1),
                        "done_per_s": round((counts.processed - previous.processed) / (counts.at - previous.at), 1),
                        "tick_to_redis_p99_ms": latency["p99_ms"],
                        "rss_mib": {k: round(v / MB, 1) for k, v in sampler.sample_now().items()}})
        previous, previous_ns = counts, now_ns
        print(f"  soak t={samples[-1]['t']:.0f}s done {samples[-1]['done_per_s']:.0f}/s "
              f"rss {samples[-1]['rss_mib']}", flush=True)
    await stack.set_rate(0)
    end, settled = await stack.wait_until_drained(cfg.drain_timeout_s)
    growth = _growth(samples)
    growing = [n for n, g in growth.items()
               if g > GROWTH_LIMIT_MIB_PER_MIN and n not in GROWS_BY_DESIGN and n not in TOOLS]
    verdict = ("no tickwire process grows beyond " + f"{GROWTH_LIMIT_MIB_PER_MIN:g} MiB/min" if not growing
               else f"growing: {', '.join(growing)}")
    verdict += "".join(f"; {n} grows by design: {why}" for n, why in GROWS_BY_DESIGN.items() if n in growth)
    verdict += "".join(f"; {n} is a tool ({why})" for n, why in TOOLS.items() if n in growth)
    return {"rate": cfg.soak_rate, "seconds": cfg.soak_s, "sample_s": cfg.soak_sample_s, "samples": samples,
            "growth_mib_per_min": growth, "lost": (end.backlog - start.backlog) if settled else None,
            "verdict": verdict}


def _growth(samples: list[dict[str, Any]]) -> dict[str, float]:
    half = samples[len(samples) // 2:]
    names = {n for s in half for n in s["rss_mib"]}
    return {n: round(slope([(s["t"] / 60, s["rss_mib"][n]) for s in half if n in s["rss_mib"]]), 2)
            for n in sorted(names)}
