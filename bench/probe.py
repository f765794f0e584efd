"""LatencyProbe: times sampled quotes from exchange time to Kafka, to Redis and to P&L, as a client sees them.

It listens where a user would: Redis pub/sub for ``price.updated.{SYMBOL}`` of the sampled symbols and
``pnl.updated.{account}`` of the account holding them, and ``quotes.raw`` for the Kafka hop (the record
timestamp, milliseconds). Every sample is (exchange time, latency) in ns; the step runner slices them by
exchange time, so each step is judged on the quotes the feed generated during it.

Each reader runs in its own child process (spawned, so no state of the bench is inherited): the bench's
event loop is busy with counters, psutil and the stack, and reading all of ``quotes.raw`` is busy too; an
arrival stamped by a loop that does other work is stamped late, so the harness would inflate the very
latency it measures. A child only reads and stamps; it keeps the samples not yet collected and hands them
over on request through a Pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from processors.latency import timestamp_ns
from schemas.topics import QUOTES_RAW, pnl_channel, price_channel

Sample = tuple[int, int]  # (exchange time ns, latency ns)
METRICS = ("tick_to_kafka", "tick_to_redis", "tick_to_pnl")
# The metrics each child reader produces.
READER_METRICS = {"redis": ("tick_to_redis", "tick_to_pnl"), "kafka": ("tick_to_kafka",)}
STOP_TIMEOUT_S = 10.0  # a child that has not exited this long after "stop" is terminated
COLLECT = "collect"
STOP = "stop"


def in_window(samples: Iterable[Sample], start_ns: int, end_ns: int) -> list[int]:
    """Latencies (ns) of the samples whose exchange time lies in [start_ns, end_ns)."""
    return [latency for tick, latency in samples if start_ns <= tick < end_ns]


@dataclass
class _Child:
    kind: str
    process: BaseProcess
    conn: Connection

    def request(self, message: str) -> Any:
        """Send one request and wait for its answer (blocking: call it in a thread)."""
        try:
            self.conn.send(message)
            return self.conn.recv()
        except (EOFError, OSError) as e:  # the child died: its reader failed (its traceback is on stderr)
            raise RuntimeError(f"probe's {self.kind} reader exited (code {self.process.exitcode})") from e


class LatencyProbe:
    """Collects latency samples until stopped; ``samples[metric]`` holds those collected so far, in arrival
    order (``window`` collects first)."""

    def __init__(self, redis_url: str, symbols: Iterable[str], pnl_account: str | None = None,
                 kafka_bootstrap: str | None = None) -> None:
        self.redis_url = redis_url
        self.symbols = sorted(symbols)
        self.pnl_account = pnl_account
        self.kafka_bootstrap = kafka_bootstrap
        self.samples: dict[str, list[Sample]] = {metric: [] for metric in METRICS}
        self._children: list[_Child] = []
        self._lock = asyncio.Lock()  # one request at a time per Pipe

    @property
    def pids(self) -> dict[str, int]:
        """The child readers' pids, by name (``probe-redis``, ``probe-kafka``)."""
        return {child.process.name: child.process.pid for child in self._children if child.process.pid}

    async def start(self) -> None:
        """Start the readers; returns once the Redis reader is subscribed and the Kafka one (if any) started."""
        channels = [price_channel(s) for s in self.symbols]
        if self.pnl_account:
            channels.append(pnl_channel(self.pnl_account))
        specs = {"redis": {"redis_url": self.redis_url, "channels": channels}}
        if self.kafka_bootstrap:
            specs["kafka"] = {"bootstrap": self.kafka_bootstrap, "symbols": self.symbols}
        context = multiprocessing.get_context("spawn")
        for kind, spec in specs.items():
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_child_main, args=(kind, spec, child_end), name=f"probe-{kind}",
                                      daemon=True)  # never outlive the bench
            process.start()
            child_end.close()  # so a dead child shows as EOF here instead of a hang
            self._children.append(_Child(kind, process, parent_end))
        try:
            for child in self._children:
                ready = await asyncio.to_thread(child.request, "ready?")
                assert ready == "ready", ready
        except BaseException:
            await self.stop()
            raise

    async def collect(self) -> None:
        """Fetch the samples the readers took since the last collect into ``samples``."""
        async with self._lock:
            for child in self._children:
                for metric, new in (await asyncio.to_thread(child.request, COLLECT)).items():
                    self.samples[metric].extend(new)

    async def window(self, metric: str, start_ns: int, end_ns: int) -> list[int]:
        """Latencies (ns) of the samples whose exchange time lies in [start_ns, end_ns), collected now."""
        await self.collect()
        return in_window(self.samples[metric], start_ns, end_ns)

    def forget_before(self, start_ns: int) -> None:
        """Drop the collected samples stamped before ``start_ns`` (a soak keeps only the ones it still reports)."""
        for metric, kept in self.samples.items():
            self.samples[metric] = [sample for sample in kept if sample[0] >= start_ns]

    async def stop(self) -> None:
        """Collect what is left, stop the readers and wait for them to exit."""
        async with self._lock:
            children, self._children = self._children, []
            for child in children:
                with contextlib.suppress(RuntimeError):  # already gone: nothing left to collect
                    for metric, new in (await asyncio.to_thread(child.request, STOP)).items():
                        self.samples[metric].extend(new)
                await asyncio.to_thread(child.process.join, STOP_TIMEOUT_S)
                if child.process.is_alive():
                    child.process.terminate()
                    await asyncio.to_thread(child.process.join)
                child.conn.close()


# --- in the child -------------------------------------------------------------------------------------


def _child_main(kind: str, spec: dict[str, Any], conn: Connection) -> None:
    asyncio.run(_child(kind, spec, conn))


async def _child(kind: str, spec: dict[str, Any], conn: Connection) -> None:
    """Run one reader; answer the parent's first request once it is ready, then serve collects until stop.

    Requests are served by the loop's reader callback on the Pipe, between two messages of the reader, so
    the only thread stamping arrivals is this loop, and it does nothing else."""
    loop = asyncio.get_running_loop()
    samples: dict[str, list[Sample]] = {metric: [] for metric in READER_METRICS[kind]}
    ready: asyncio.Future[None] = loop.create_future()
    reader = asyncio.create_task(_READERS[kind](spec, samples, ready), name=f"probe-{kind}")
    await asyncio.wait({reader, ready}, return_when=asyncio.FIRST_COMPLETED)
    if reader.done():
        reader.result()  # raises why it could not start; the parent sees EOF
    stopped: asyncio.Future[None] = loop.create_future()

    def serve() -> None:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            request = STOP
        if request == COLLECT or request == STOP:
            taken = {metric: list(kept) for metric, kept in samples.items()}
            for kept in samples.values():
                kept.clear()  # handed over: the parent keeps them from here
            with contextlib.suppress(OSError):
                conn.send(taken)
        else:
            conn.send("ready")
        if request == STOP and not stopped.done():
            stopped.set_result(None)

    loop.add_reader(conn.fileno(), serve)
    try:
        await asyncio.wait({reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(conn.fileno())
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader  # a reader that failed raises here: the child exits non-zero, the parent sees EOF
        conn.close()


async def _read_pubsub(spec: dict[str, Any], samples: dict[str, list[Sample]], ready: asyncio.Future[None]) -> None:
    prices, pnl = samples["tick_to_redis"], samples["tick_to_pnl"]
    redis = Redis.from_url(spec["redis_url"])
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(*spec["channels"])
        ready.set_result(None)
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            arrived = time.time_ns()
            data = orjson.loads(message["data"])
            if message["channel"].startswith(b"pnl."):
                stamp = data.get("price_timestamp")
                if stamp and data.get("price_source") == "real-time":
                    tick = timestamp_ns(stamp)
                    pnl.append((tick, arrived - tick))
            else:
                tick = timestamp_ns(data["timestamp"])
                prices.append((tick, arrived - tick))
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def _read_kafka(spec: dict[str, Any], samples: dict[str, list[Sample]], ready: asyncio.Future[None]) -> None:
    wanted = {s.encode() for s in spec["symbols"]}
    out = samples["tick_to_kafka"]
    consumer = AIOKafkaConsumer(QUOTES_RAW.name, bootstrap_servers=spec["bootstrap"], group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        ready.set_result(None)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.key in wanted:
                        tick = timestamp_ns(orjson.loads(record.value)["t"])
                        # The record timestamp is the producer's, so this child's own delay does not count.
                        out.append((tick, record.timestamp * 1_000_000 - tick))
    finally:
        await consumer.stop()


_READERS = {"redis": _read_pubsub, "kafka": _read_kafka}
