"""``python -m bench`` (``make bench``): ceilings, the pipeline and the direct design, then the results files;
or a soak (``make soak``: ``--day``, a trading day on the pipeline)."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from bench.ceilings import measure_ceilings
from bench.config import (
    DAY_FAULTS,
    DAY_MINUTES,
    DAY_POSITIONS_PER_ACCOUNT,
    DAY_QUOTES,
    DESIGNS,
    FEED_SHAPES,
    SOAK_RETENTION_HOURS,
    BenchConfig,
)
from bench.day_plan import history_for_mute
from bench.day_shape import DayShape
from bench.designs import run_design
from bench.report import write_results
from bench.soak_report import write_soak
from producers.settings import IngestSettings
from tickwire.logging import configure_logging

DAY_POSITION_CHANGES_EVERY_S = 30.0


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """Command line -> BenchConfig (``--help`` lists everything)."""
    cfg = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rates", default=",".join(map(str, cfg.rates)),
                        help="total quotes/s over all symbols, comma list (default %(default)s)")
    parser.add_argument("--symbols", type=int, default=cfg.symbols, help="N symbols (default %(default)s)")
    parser.add_argument("--positions", type=int, default=cfg.positions, help="M positions (default %(default)s)")
    parser.add_argument("--positions-per-account", type=int, default=None,
                        help=f"positions per account (default {cfg.positions_per_account}; "
                             f"{DAY_POSITIONS_PER_ACCOUNT} for a --day)")
    parser.add_argument("--measure", type=float, default=cfg.measure_s, help="seconds measured per rate")
    parser.add_argument("--warmup", type=float, default=cfg.warmup_s, help="seconds at a rate before measuring")
    parser.add_argument("--first-warmup", type=float, default=cfg.first_warmup_s,
                        help="extra seconds before the first rate (the broker's JVM warms up)")
    parser.add_argument("--burst-factor", type=float, default=cfg.burst_factor, help="burst multiple; 1 = none")
    parser.add_argument("--burst-seconds", type=float, default=cfg.burst_s)
    parser.add_argument("--designs", default=",".join(cfg.designs), help=f"any of {','.join(DESIGNS)}")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the raw ceilings")
    parser.add_argument("--refine", type=int, default=cfg.refine,
                        help="extra rates tried between the last sustained and the first unsustained rate")
    parser.add_argument("--feed-shape", choices=FEED_SHAPES, default=cfg.feed_shape,
                        help="realistic: each symbol's quotes at its own random times in 5 ms frames (judged); "
                             "bursty: every symbol at once each tick, an extra (default %(default)s)")
    soak = parser.add_mutually_exclusive_group()
    soak.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                      help="instead of the series: run the pipeline at --soak-rate this long, a report row every "
                           "--soak-report-every, then the checks and the consistency oracle")
    soak.add_argument("--day", action="store_true",
                      help="instead of the series: a soak through a trading day (make soak): --day-quotes over "
                           "--day-minutes, 2x the average for the first tenth, a midday lull, a closing burst, "
                           f"positions filled every {DAY_POSITION_CHANGES_EVERY_S:g}s, a feed drop and a mute socket")
    parser.add_argument("--day-quotes", type=int, default=None,
                        help=f"quotes in the day (default {DAY_QUOTES:,}: 6.5 h at 1,000/s); implies --day")
    parser.add_argument("--day-minutes", type=float, default=None,
                        help=f"the day's length in minutes (default {DAY_MINUTES:g}); implies --day")
    parser.add_argument("--soak-rate", type=int, default=cfg.soak_rate, help="quotes/s of a soak (default %(default)s)")
    parser.add_argument("--soak-report-every", type=float, default=cfg.soak_report_s, metavar="SECONDS",
                        help="seconds between a soak's report rows (default %(default)s)")
    parser.add_argument("--out", type=Path, default=cfg.out_dir, help="results folder (default %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                        help="environment for the pipeline's processes, e.g. TICKWIRE_PROCESSOR_BATCH_SIZE=500 (a soak "
                             f"sets TICKWIRE_TOPIC_RETENTION_HOURS={SOAK_RETENTION_HOURS:g} unless given)")
    parser.add_argument("--workers", type=int, default=cfg.workers, help="processor workers of the pipeline")
    parser.add_argument("--stages-together", action="store_true",
                        help="run each worker's price and P&L stages in one process (default: two, processor and "
                             "processor-pnl, as `tickwire run` does)")
    parser.add_argument("--profile", default="", help="comma list of processes to run under cProfile "
                        "(processor, ingest, direct); stats go to <run dir>/<design>/<name>.prof")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.set)
    day = args.day or args.day_quotes is not None or args.day_minutes is not None
    if args.soak and day:
        parser.error("--soak is one rate; --day-quotes and --day-minutes are a day's: choose one")
    if args.soak or day:  # retention that deletes within the soak (see SOAK_RETENTION_HOURS)
        env = {"TICKWIRE_TOPIC_RETENTION_HOURS": f"{SOAK_RETENTION_HOURS:g}", **env}
    per_account = args.positions_per_account or (DAY_POSITIONS_PER_ACCOUNT if day else cfg.positions_per_account)
    cfg = replace(
        cfg,
        rates=tuple(int(r) for r in args.rates.split(",") if r),
        symbols=args.symbols,
        positions=args.positions,
        positions_per_account=per_account,
        measure_s=args.measure,
        warmup_s=args.warmup,
        first_warmup_s=args.first_warmup,
        burst_factor=args.burst_factor,
        burst_s=args.burst_seconds,
        designs=tuple(d for d in args.designs.split(",") if d),
        ceilings=not args.no_ceilings and not args.soak and not day,
        refine=args.refine,
        feed_shape=args.feed_shape,
        soak_s=args.soak,
        soak_rate=args.soak_rate,
        soak_report_s=args.soak_report_every,
        out_dir=args.out,
        env=env,
        profile=tuple(p for p in args.profile.split(",") if p),
        workers=args.workers,
        stages_apart=not args.stages_together,
    )
    return day_config(cfg, args.day_quotes or DAY_QUOTES, args.day_minutes or DAY_MINUTES) if day else cfg


def day_config(cfg: BenchConfig, quotes: int, minutes: float) -> BenchConfig:
    """``cfg`` made a trading day of ``quotes`` over ``minutes``: its faults, its position changes, and a feed
    history deep enough for the ingest to repair the mute (whose length is the ingest's mute_after)."""
    seconds = minutes * 60
    default_mute_after = IngestSettings.model_fields["mute_after_s"].default
    mute_after_s = float(cfg.env.get("TICKWIRE_MUTE_AFTER_SECONDS", default_mute_after))
    return replace(cfg, soak_s=seconds, day_quotes=quotes, faults=DAY_FAULTS,
                   position_change_every_s=DAY_POSITION_CHANGES_EVERY_S,
                   feed_history=history_for_mute(DayShape(quotes, seconds), cfg.symbols, mute_after_s))


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)}


async def run(cfg: BenchConfig) -> dict[str, Any]:
    """The whole benchmark; returns the results dict."""
    began = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "config": _config_dict(cfg), "designs": {}}
    if cfg.day_quotes:
        shape = DayShape(cfg.day_quotes, cfg.soak_s)
        print(f"soak: a day of {cfg.day_quotes:,} quotes in {cfg.soak_s / 60:g} min (average {shape.average:,.0f}/s; "
              + ", ".join(f"{p.name} {p.rate:,.0f}/s" for p in shape.phases)
              + f"), {cfg.positions} positions over {cfg.symbols} symbols, {cfg.feed_shape} feed, faults "
              + ", ".join(f"{name} at {share:.0%}" for name, share in cfg.faults)
              + f", a row every {cfg.soak_report_s:g}s", flush=True)
        results["designs"]["pipeline"] = await run_design(cfg, "pipeline", soak=True)
    elif cfg.soak_s:
        print(f"soak: pipeline at {cfg.soak_rate}/s for {cfg.soak_s:.0f}s, {cfg.feed_shape} feed, a row every "
              f"{cfg.soak_report_s:g}s", flush=True)
        results["designs"]["pipeline"] = await run_design(cfg, "pipeline", soak=True)
    else:
        if cfg.ceilings:
            print("ceilings: feed alone, broker produce alone, Redis pipelined alone", flush=True)
            results["ceilings"] = await measure_ceilings(cfg)
            print(f"  {results['ceilings']}", flush=True)
        for design in cfg.designs:
            print(f"{design}: rates {', '.join(map(str, cfg.rates))} quotes/s over {cfg.symbols} symbols, "
                  f"{cfg.feed_shape} feed", flush=True)
            results["designs"][design] = await run_design(cfg, design)
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["duration_s"] = round(time.monotonic() - began, 1)
    return results


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, print the table, write bench/results/."""
    cfg = parse_args(argv)
    configure_logging("WARNING")  # the components' start-up chatter would bury the progress lines
    results = asyncio.run(run(cfg))
    if cfg.soak_s:
        table = write_soak(results, cfg.out_dir)
    else:
        table = write_results(results, cfg.out_dir)
    print(table)
    print(f"results in {cfg.out_dir}/ ({results['duration_s']:.0f}s)", file=sys.stderr)


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    return {"rates": list(cfg.rates), "symbols": cfg.symbols, "positions": cfg.positions,
            "positions_per_account": cfg.positions_per_account, "day_quotes": cfg.day_quotes,
            "faults": [list(f) for f in cfg.faults], "position_change_every_s": cfg.position_change_every_s,
            "position_change_count": cfg.position_change_count, "feed_history": cfg.feed_history,
            "sample_symbols": cfg.sample_symbols, "warmup_s": cfg.warmup_s, "first_warmup_s": cfg.first_warmup_s,
            "measure_s": cfg.measure_s,
            "burst": f"{cfg.burst_factor:g}x for {cfg.burst_s:g}s", "designs": list(cfg.designs),
            "feed_shape": cfg.feed_shape,
            "env": cfg.env, "workers": cfg.workers, "stages_apart": cfg.stages_apart}
