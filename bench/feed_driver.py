"""The local Alpaca feed under the benchmark's control: rate changes and bursts over Redis, quotes counted.

Runs as its own process (``python -m bench.feed_driver``) so generating quotes never shares a core's
GIL with what is measured. It prints the feed's banner line, then obeys commands on the Redis channel
``bench:feed:control`` (``rate <total quotes/s>``, ``burst <factor> <seconds>``, ``fault drop|mute``: see
:mod:`bench.feed_faults`) and writes how many quotes it generated to hash ``bench:feed`` every 50 ms.

``--shape realistic`` (the bench's default) is the local feed's ``realistic`` option: each symbol's quotes at
its own Poisson times, sent in a frame every 5 ms, every quote moving the mid. ``--shape bursty`` is its
default: every symbol quotes at the same 10 ms ticks, so at 1,000/s over 100 symbols all 100 arrive together
every 100 ms and the nine ticks between are empty.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from alpaca_feed.history import DEFAULT_LIMIT as DEFAULT_HISTORY_LIMIT
from alpaca_feed.server import AlpacaFeedServer
from bench import feed_faults
from bench.config import FEED_SHAPES, BenchConfig
from tickwire.signals import stop_on_signals

CONTROL_CHANNEL = "bench:feed:control"
COUNTS_KEY = "bench:feed"
REPORT_INTERVAL_S = 0.05
# The generator's rate is fixed at start; it runs at BASE_RATE x factor. 100/s per symbol makes the bursty
# shape tick every 10 ms (its minimum); the realistic shape sends a frame every 5 ms whatever the rate.
BASE_RATE_PER_SYMBOL = 100.0
FOREVER_S = 10.0 * 365 * 86_400
PAUSED_FACTOR = 1e-9


class RateControl:
    """Maps total quotes/s over ``symbols`` symbols to the feed's rate multiplier (its burst knob)."""

    def __init__(self, server: AlpacaFeedServer, symbols: int) -> None:
        self.server = server
        self.symbols = symbols
        self.factor = 0.0
        self._restore: asyncio.TimerHandle | None = None

    def set_rate(self, total_per_s: float) -> None:
        """Run at ``total_per_s`` quotes per second over all symbols (0 pauses the quotes)."""
        # The feed refuses a factor of 0; one quote per symbol every few years is a pause.
        self.factor = max(total_per_s / (self.symbols * BASE_RATE_PER_SYMBOL), PAUSED_FACTOR)
        self._cancel_restore()
        self.server.faults.burst(self.factor, FOREVER_S)

    def burst(self, multiple: float, seconds: float) -> None:
        """``multiple`` x the current rate for ``seconds``, then back to the current rate."""
        self._cancel_restore()
        self.server.faults.burst(self.factor * multiple, seconds)
        self._restore = asyncio.get_running_loop().call_later(
            seconds, lambda: self.server.faults.burst(self.factor, FOREVER_S))

    def _cancel_restore(self) -> None:
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None


def count_quotes(model: Any, counter: list[int]) -> None:
    """Wrap the model's quote generators (``generate``, the feed's hot path, and ``next_events``) to count quotes."""
    next_events: Callable[..., list[dict[str, Any]]] = model.next_events

    def counted_next_events(symbol: str, now_ns: int) -> list[dict[str, Any]]:
        events = next_events(symbol, now_ns)
        counter[0] += sum(1 for event in events if event.get("T") == "q")
        return events

    model.next_events = counted_next_events
    generate: Callable[..., None] | None = getattr(model, "generate", None)
    if generate is not None:
        def counted_generate(symbol: str, now_ns: int, count: int, out: list[dict[str, Any]]) -> None:
            start = len(out)
            generate(symbol, now_ns, count, out)
            counter[0] += sum(1 for i in range(start, len(out)) if out[i].get("T") == "q")

        model.generate = counted_generate


async def report_counts(redis: Redis, counter: list[int]) -> None:
    """Write the quote count (and when it was taken) to Redis until cancelled."""
    while True:
        await redis.hset(COUNTS_KEY, mapping={"quotes": counter[0], "at_ns": time.time_ns()})
        await asyncio.sleep(REPORT_INTERVAL_S)  # reporting period


class FaultRunner:
    """Runs each ``fault`` command in its own task (a mute lasts until the ingest reconnects) and records it."""

    def __init__(self, server: AlpacaFeedServer, redis: Redis, symbols: list[str], limit_s: float) -> None:
        self.server, self.redis, self.symbols, self.limit_s = server, redis, symbols, limit_s
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, fault: str) -> None:
        """Inject ``fault`` in the background."""
        task = asyncio.create_task(self._run(fault), name=f"fault-{fault}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        """The close: halt every symbol (a status message each), so the ingest takes the silence as no fault."""
        for symbol in self.symbols:
            self.server.faults.halt(symbol)

    async def _run(self, fault: str) -> None:
        await feed_faults.record(self.redis, await feed_faults.inject(self.server, fault, self.symbols, self.limit_s))


async def obey(pubsub: PubSub, control: RateControl, faults: FaultRunner) -> None:
    """Apply commands from the (subscribed) control channel until cancelled."""
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        verb, *args = message["data"].decode().split()
        if verb == "rate":
            control.set_rate(float(args[0]))
        elif verb == "burst":
            control.burst(float(args[0]), float(args[1]))
        elif verb == "fault":
            faults.start(args[0])
        elif verb == "close":
            faults.close()


async def serve(port: int, symbols: int, redis_url: str, seed: int, shape: str,
                history_limit: int = DEFAULT_HISTORY_LIMIT, fault_limit_s: float = 300.0) -> None:
    """Serve the feed, paused, until SIGTERM/SIGINT; the benchmark sets rates and injects faults through Redis."""
    server = AlpacaFeedServer(port=port, rate_per_symbol=BASE_RATE_PER_SYMBOL, seed=seed, connections_per_key=None,
                              realistic=shape == "realistic", history_limit=history_limit)
    counter = [0]
    count_quotes(server.model, counter)
    redis = Redis.from_url(redis_url)
    await server.start()
    control = RateControl(server, symbols)
    control.set_rate(0)
    stop = stop_on_signals()
    pubsub = redis.pubsub()
    await pubsub.subscribe(CONTROL_CHANNEL)  # before the banner: the benchmark may send a command at once
    faults = FaultRunner(server, redis, BenchConfig(symbols=symbols).symbol_names(), fault_limit_s)
    tasks = [asyncio.create_task(report_counts(redis, counter)),
             asyncio.create_task(obey(pubsub, control, faults))]
    print(f"tickwire-feed listening on ws://127.0.0.1:{server.port}/v2/{{feed}}", flush=True)
    try:
        await stop.wait()
    finally:
        tasks += faults.tasks
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        await server.stop()
        await redis.aclose()


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--symbols", type=int, required=True, help="how many symbols the client subscribes")
    parser.add_argument("--redis", required=True, help="Redis URL for control and counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=FEED_SHAPES, default=FEED_SHAPES[0], help="when quotes arrive")
    parser.add_argument("--history-limit", type=int, default=DEFAULT_HISTORY_LIMIT,
                        help="quotes kept per symbol for the REST history the ingest repairs gaps from")
    parser.add_argument("--fault-limit", type=float, default=300.0,
                        help="seconds a fault waits for the ingest to come back before it is called unrecovered")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop  # the feed is the load generator: let it be as fast as it can

        uvloop.install()
    asyncio.run(serve(args.port, args.symbols, args.redis, args.seed, args.shape, args.history_limit,
                      args.fault_limit))


if __name__ == "__main__":
    main()
