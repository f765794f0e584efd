"""How many quotes per second the processor finishes flat out, and its CPU per quote, without feed or ingest.

The rate series of ``make bench`` shares two cores between the feed, the ingest, the broker, Redis and
the processor, so a change to the processor moves its figures by less than their run-to-run noise. Here
the pipeline starts as in the bench (book of positions loaded and valued), then N raw quotes are written
straight to ``quotes.raw`` as the ingest writes them and the processor works through the backlog alone:

    .venv/bin/python -m bench.processor_capacity --quotes 30000 --repeat 3

Prints per round: quotes/s finished, and CPU ms per 1,000 quotes of the processor, broker and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.config import BenchConfig
from bench.designs import READY_TIMEOUT_S, make_ready, processed_at_least
from bench.positions import build_book
from bench.resources import ResourceSampler
from bench.stack import BenchStack
from schemas.timestamps import format_ns, now_ns
from schemas.topics import QUOTES_RAW


def quote_records(symbols: list[str], count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``count`` raw quotes round-robin over ``symbols``, each a cent or two from its last mid, stamped now."""
    rng = random.Random(seed)
    mids = {symbol: 10_000 + rng.randrange(10_000) for symbol in symbols}  # in cents
    records = []
    start = now_ns()
    for index in range(count):
        symbol = symbols[index % len(symbols)]
        mids[symbol] += rng.choice((-2, -1, 0, 1, 2))
        stamp = format_ns(start + index * 1_000)
        value = {"T": "q", "S": symbol, "bx": "V", "bp": (mids[symbol] - 1) / 100, "bs": 3, "ax": "V",
                 "ap": (mids[symbol] + 1) / 100, "as": 2, "c": ["R"], "z": "C", "t": stamp, "received_at": stamp}
        records.append((symbol.encode(), orjson.dumps(value)))
    return records


async def publish(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    """Write every record to ``quotes.raw`` (pipelined, acks=all), as fast as the broker takes them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(QUOTES_RAW.name, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def run(cfg: BenchConfig, quotes: int, repeat: int) -> None:
    symbols = cfg.symbol_names()
    book = build_book(symbols, cfg.positions, cfg.positions_per_account, cfg.seed)
    async with BenchStack(cfg, "pipeline") as stack:
        await make_ready(stack, cfg, book)
        assert stack.bootstrap is not None
        pids = {name: pid for name, pid in stack.pids.items() if name in ("processor", "broker", "redis")}
        sampler = ResourceSampler(pids)  # read on demand only: CPU time before and after each round
        print(f"{len(symbols)} symbols, {len(book)} positions, {quotes} quotes per round; "
              f"settings {cfg.env or 'defaults'}")
        for round_ in range(1, repeat + 1):
            records = quote_records(symbols, quotes, cfg.seed + round_)
            start_count = (await stack.counts()).processed
            assert stack.redis is not None
            redis_before = await stack.redis.info("commandstats")
            cpu_before, started = sampler.cpu_seconds(), time.monotonic()
            await publish(stack.bootstrap, records)
            target = start_count + quotes
            await stack.wait_for(lambda target=target: processed_at_least(stack, target), READY_TIMEOUT_S,
                                 f"{quotes} quotes to be processed")
            elapsed = time.monotonic() - started
            cpu_after = sampler.cpu_seconds()
            used = {name: cpu_after[name] - cpu_before[name] for name in pids}
            per_k = ", ".join(f"{name} {used[name] / quotes * 1e6:.0f}" for name in pids)
            rss = ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in sampler.sample_now().items())
            print(f"round {round_}: {quotes / elapsed:,.0f} quotes/s finished; "
                  f"processor CPU {used['processor'] / elapsed:.0%}; CPU ms per 1,000 quotes: {per_k}; "
                  f"RSS MiB: {rss}", flush=True)
            redis_after = await stack.redis.info("commandstats")
            print(f"  Redis per 1,000 quotes: {redis_work(redis_before, redis_after, quotes)}", flush=True)


def redis_work(before: dict, after: dict, quotes: int) -> str:  # type: ignore[type-arg]
    """Calls and server CPU ms of each Redis command, per 1,000 quotes, busiest first."""
    rows = []
    for name, stats in after.items():
        old = before.get(name, {"calls": 0, "usec": 0})
        calls, usec = stats["calls"] - old["calls"], stats["usec"] - old["usec"]
        if calls:
            rows.append((usec, f"{name.removeprefix('cmdstat_')} {calls * 1000 / quotes:.0f} calls"
                               f" {usec / quotes:.0f} ms"))
    return ", ".join(text for _, text in sorted(rows, reverse=True)[:6])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=30_000, help="quotes per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--positions", type=int, default=1_000)
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                        help="environment for the pipeline's processes")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)
    cfg = BenchConfig(symbols=args.symbols, positions=args.positions, env=env,
                      run_dir=Path(".tickwire/bench-capacity"))
    asyncio.run(run(cfg, args.quotes, args.repeat))


if __name__ == "__main__":
    main()
