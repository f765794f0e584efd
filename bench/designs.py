"""Runs one design end to end: start its stack, make it ready (and load the book), run the rate series.

Both designs see the same feed, symbols and rates; the pipeline also carries the book of positions,
so its P&L is timed too.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from bench.config import BenchConfig
from bench.hops import scrape
from bench.positions import account_name, build_book, probe_symbols, publish_book
from bench.probe import LatencyProbe
from bench.resources import ResourceSampler
from bench.stack import BenchStack
from bench.steps import StepResult, StepRunner, run_series
from schemas.topics import pnl_total_key

READY_TIMEOUT_S = 180.0


async def run_design(cfg: BenchConfig, design: str, soak: bool = False) -> dict[str, Any]:
    """Everything one design measured, JSON-ready.

    The pipeline runs each rate on a fresh stack unless ``cfg.one_stack``: the embedded broker slows down as
    its partitions store batches (docs/embedded-broker.md), so a rate measured after the others on the same
    broker measures the broker's history. The direct design has no broker and runs the series on one stack.
    """
    symbols = cfg.symbol_names()
    book = build_book(symbols, cfg.positions, cfg.positions_per_account, cfg.seed)
    sampled = probe_symbols(book)[: cfg.sample_symbols]
    book = book if design == "pipeline" else []
    ready: list[float] = []
    if soak or design != "pipeline" or cfg.one_stack:
        async with _started(cfg, design, book, sampled, ready) as runner:
            if soak:
                from bench.soak import run_soak  # only soaks need it

                return {"design": design, "ready_s": ready[0], "soak": await run_soak(runner, cfg)}
            steps = await runner.series(cfg.rates)
    else:
        async def fresh_step(rate: int) -> StepResult:
            async with _started(cfg, design, book, sampled, ready) as runner:
                return await runner.step(rate)

        steps = await run_series(cfg.rates, cfg.refine, fresh_step)
    return {"design": design, "ready_s": ready[0], "sampled_symbols": sampled, "fresh_stack_per_rate":
            design == "pipeline" and not cfg.one_stack,
            "max_sustained_per_s": max((s.rate for s in steps if s.sustained), default=0),
            "steps": [s.as_dict() for s in steps]}


@contextlib.asynccontextmanager
async def _started(cfg: BenchConfig, design: str, book: list, sampled: list[str],  # type: ignore[type-arg]
                   ready: list[float]) -> AsyncIterator[StepRunner]:
    """A started, ready stack of ``design`` with its probe and sampler; appends how long it took to ``ready``."""
    started = time.monotonic()
    async with BenchStack(cfg, design) as stack:
        await make_ready(stack, cfg, book)
        ready.append(round(time.monotonic() - started, 1))
        print(f"  {design} ready in {ready[-1]}s (pids {stack.pids})", flush=True)
        probe = LatencyProbe(stack.redis_url, sampled, book[0].account if book else None, stack.bootstrap)
        await probe.start()
        sampler = ResourceSampler({**stack.pids, "bench": os.getpid()})
        sampler.start()
        runner = StepRunner(stack, probe, sampler, cfg)
        stack.start_profiles()
        if design == "pipeline":
            runner.hop_scraper = lambda: scrape(stack.metrics_port)
        try:
            yield runner
        finally:
            await sampler.stop()
            await probe.stop()


async def make_ready(stack: BenchStack, cfg: BenchConfig, book: list) -> None:  # type: ignore[type-arg]
    """One quote per symbol through the whole design, then the book (pipeline), then a paused, drained feed."""
    await stack.set_rate(cfg.symbols)
    await stack.wait_for(lambda: processed_at_least(stack, cfg.symbols), READY_TIMEOUT_S,
                         "the first quotes to come through")
    if book:
        assert stack.bootstrap is not None and stack.redis is not None
        await publish_book(stack.bootstrap, book)
        accounts = math.ceil(len(book) / max(1, min(cfg.positions_per_account, cfg.symbols)))
        await stack.wait_for(lambda: _book_loaded(stack, accounts, len(book)), READY_TIMEOUT_S,
                             f"{len(book)} positions to be valued")
    await stack.set_rate(0)
    await stack.wait_until_drained(cfg.drain_timeout_s)


async def processed_at_least(stack: BenchStack, count: int) -> bool:
    """Whether the design has finished (written or rejected) at least ``count`` quotes."""
    return (await stack.counts()).processed >= count


async def _book_loaded(stack: BenchStack, accounts: int, positions: int) -> bool:
    assert stack.redis is not None
    totals = await stack.redis.mget([pnl_total_key(account_name(i)) for i in range(accounts)])
    return sum(orjson.loads(t)["positions"] for t in totals if t) >= positions

