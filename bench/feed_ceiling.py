"""How many messages per second the local Alpaca feed delivers from one process to a real client.

Starts ``tickwire feed serve`` as its own process (as ``make run`` does), subscribes N symbols'
trades, quotes and bars over ``/v2/sip`` (no symbol cap there), asks for a target total rate and
counts what arrives over a window, with the feed process's CPU use. Clients:

- ``socket``: a websockets client that reads each msgpack frame's array header (so the client is never
  the bottleneck: this is the feed's ceiling);
- ``alpaca-py``: the real ``StockDataStream`` in raw mode with one counting handler per channel (what an
  alpaca-py application can take in).

    .venv/bin/python bench/feed_ceiling.py --symbols 100 --targets 10000,50000,max --seconds 10

Prints one line per (client, target): target msgs/s, delivered msgs/s, the feed's and the client's CPU %,
and messages per second of feed CPU (what one uncontended core would deliver; on a shared machine the
delivered figure also depends on what else runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgpack
import psutil
from alpaca.data.live import StockDataStream
from websockets.asyncio.client import connect

REPO_ROOT = Path(__file__).resolve().parents[1]
# Messages the synthetic market sends per quote: the quote, a trade one time in four, and the rest.
MESSAGES_PER_QUOTE = 1.27
WARMUP_S = 2.0


def _symbol(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "Q" + letters[index // 676 % 26] + letters[index // 26 % 26] + letters[index % 26]


async def start_feed(symbols: int, per_symbol_rate: float) -> tuple[asyncio.subprocess.Process, int]:
    """The feed as ``make run`` starts it, generating ``per_symbol_rate`` quotes/s per subscribed symbol."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alpaca_feed", "serve", "--port", "0", "--rate", str(per_symbol_rate),
        "--no-rare-events", "--history", "1000", "--log-level", "WARNING",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = re.search(r":(\d+)/v2/", line)
    if match is None:
        raise RuntimeError(f"feed did not start: {line!r}")
    return process, int(match.group(1))


def _array_length(frame: bytes) -> int:
    # Only the msgpack array header: fixarray, array16 or array32.
    head = frame[0]
    if head & 0xF0 == 0x90:
        return head & 0x0F
    if head == 0xDC:
        return int.from_bytes(frame[1:3], "big")
    if head == 0xDD:
        return int.from_bytes(frame[1:5], "big")
    return 0


async def socket_client(url: str, symbols: list[str], count: list[int], stop: asyncio.Event) -> None:
    """Counts data messages with a plain websockets client (msgpack, like alpaca-py's wire format)."""
    async with connect(url, additional_headers={"Content-Type": "application/msgpack"}, max_size=2**24) as ws:
        await ws.recv()
        await ws.send(msgpack.packb({"action": "auth", "key": "bench", "secret": "bench"}))
        await ws.recv()
        await ws.send(msgpack.packb({"trades": symbols, "quotes": symbols, "bars": symbols, "action": "subscribe"}))
        await ws.recv()
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            count[0] += _array_length(frame)


async def alpaca_client(url: str, symbols: list[str], count: list[int], stop: asyncio.Event) -> None:
    """Counts data messages with alpaca-py's StockDataStream in raw mode."""
    stream = StockDataStream("bench", "bench", raw_data=True, url_override=url)

    async def handle(message: object) -> None:
        count[0] += 1

    stream.subscribe_trades(handle, *symbols)
    stream.subscribe_quotes(handle, *symbols)
    stream.subscribe_bars(handle, *symbols)
    task = asyncio.create_task(stream._run_forever())
    try:
        await stop.wait()
    finally:
        await stream.stop_ws()
        if stream._ws is not None:
            with contextlib.suppress(Exception):
                await stream._ws.close()  # alpaca-py only notices a stop between 5 s receive polls
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await stream.close()


CLIENTS: dict[str, Callable[[str, list[str], list[int], asyncio.Event], Awaitable[None]]] = {
    "socket": socket_client,
    "alpaca-py": alpaca_client,
}


async def measure(client: str, symbols: int, target: float | None, seconds: float) -> tuple[float, float, float]:
    """(delivered msgs/s, feed CPU %, client CPU %) for ``target`` total msgs/s (None: as fast as it can)."""
    per_symbol = 1_000_000.0 / symbols if target is None else target / MESSAGES_PER_QUOTE / symbols
    process, port = await start_feed(symbols, per_symbol)
    feed = psutil.Process(process.pid)
    me = psutil.Process(os.getpid())
    count = [0]
    stop = asyncio.Event()
    names = [_symbol(index) for index in range(symbols)]
    task = asyncio.create_task(CLIENTS[client](f"ws://127.0.0.1:{port}/v2/sip", names, count, stop))
    try:
        await asyncio.sleep(WARMUP_S)  # a benchmark's measuring window, not synchronisation
        start_count, start = count[0], time.perf_counter()
        feed_cpu, my_cpu = sum(feed.cpu_times()[:2]), sum(me.cpu_times()[:2])
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        delivered = (count[0] - start_count) / elapsed
        feed_share = (sum(feed.cpu_times()[:2]) - feed_cpu) / elapsed * 100
        client_share = (sum(me.cpu_times()[:2]) - my_cpu) / elapsed * 100
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        process.send_signal(signal.SIGTERM)
        await process.wait()
    return delivered, feed_share, client_share


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=100, help="symbols subscribed (trades, quotes, bars)")
    parser.add_argument("--targets", default="10000,50000,max", help="total msgs/s to ask for; 'max' = no limit")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per run")
    parser.add_argument("--clients", default="socket,alpaca-py", help="socket and/or alpaca-py")
    args = parser.parse_args()
    targets = [None if t.strip() == "max" else float(t) for t in args.targets.split(",")]
    print(f"local feed ceiling: {args.symbols} symbols, {args.seconds:.0f} s windows, {psutil.cpu_count()} CPUs")
    print(f"{'client':<10} {'target msgs/s':>14} {'delivered msgs/s':>17} {'feed CPU %':>11} {'client CPU %':>13} "
          f"{'msgs per feed CPU-s':>20}")  # fmt: skip
    for client in args.clients.split(","):
        for target in targets:
            delivered, feed_cpu, client_cpu = await measure(client, args.symbols, target, args.seconds)
            shown = "max" if target is None else f"{target:,.0f}"
            per_cpu = delivered / (feed_cpu / 100) if feed_cpu else 0.0
            row = f"{client:<10} {shown:>14} {delivered:>17,.0f} {feed_cpu:>11.0f} {client_cpu:>13.0f}"
            print(f"{row} {per_cpu:>20,.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
