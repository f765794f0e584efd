"""Runs one design end to end: start its stack, make it ready (and load the book), run the rate series.

Both designs see the same feed (shape, seed, symbols) and rates, each on one stack for all its rates; the
pipeline also carries the book of positions, so its P&L is timed too.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from bench.config import GUARANTEES, BenchConfig
from bench.hops import scrape_all
from bench.positions import BenchPosition, account_name, build_book, probe_symbols, publish_book
from bench.probe import LatencyProbe
from bench.resources import ResourceSampler
from bench.soak import run_soak
from bench.stack import BenchStack
from bench.steps import StepRunner
from schemas.topics import pnl_total_key

READY_TIMEOUT_S = 180.0


async def run_design(cfg: BenchConfig, design: str, soak: bool = False) -> dict[str, Any]:
    """Everything one design measured, JSON-ready: the rate series (or the soak) on one stack."""
    symbols = cfg.symbol_names()
    book = build_book(symbols, cfg.positions, cfg.positions_per_account, cfg.seed)
    sampled = probe_symbols(book)[: cfg.sample_symbols]
    book = book if design in GUARANTEES else []
    async with started(cfg, design, book, sampled) as (runner, ready_s):
        if soak:
            return {"design": design, "ready_s": ready_s, "sampled_symbols": sampled,
                    "soak": await run_soak(runner, cfg, book)}
        steps = await runner.series(cfg.rates)
    return {"design": design, "ready_s": ready_s, "sampled_symbols": sampled,
            "max_sustained_per_s": max((s.rate for s in steps if s.sustained), default=0),
            "steps": [s.as_dict() for s in steps]}


@contextlib.asynccontextmanager
async def started(cfg: BenchConfig, design: str, book: list[BenchPosition],
                  sampled: list[str]) -> AsyncIterator[tuple[StepRunner, float]]:
    """A started, ready stack of ``design`` with its probe and sampler, and the seconds it took to be ready."""
    began = time.monotonic()
    async with BenchStack(cfg, design) as stack:
        await make_ready(stack, cfg, book)
        ready_s = round(time.monotonic() - began, 1)
        print(f"  {design} ready in {ready_s}s (pids {stack.pids})", flush=True)
        probe = LatencyProbe(stack.redis_url, sampled, book[0].account if book else None, stack.bootstrap)
        await probe.start()
        sampler = ResourceSampler({**stack.pids, "bench": os.getpid()})
        sampler.start()
        runner = StepRunner(stack, probe, sampler, cfg)
        stack.start_profiles()
        if design in GUARANTEES:
            runner.hop_scraper = lambda: scrape_all(stack.metrics_ports)
        try:
            yield runner, ready_s
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

