"""``tickwire run``: the whole pipeline in the foreground, starting only what is not configured.

Unset KAFKA_BOOTSTRAP_SERVERS -> the embedded Kafka broker, its data kept in ``$TICKWIRE_RUN_DIR/kafka`` from
one run to the next (``tickwire run --fresh`` starts it empty); unset REDIS_URL -> embedded redis-server;
no ALPACA_STREAM_URL and no credentials -> the local Alpaca feed. Then the price stage and the P&L stage (two
processor processes, so the P&L fan-out never delays a price), the ingest,
and a once-a-second price line. Ctrl-C (or SIGTERM) stops everything it started in dependency
order (:data:`STOP_ORDER`, then Redis, then the broker), each with a bounded wait.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import structlog

from consumers.price_monitor import PriceMonitor
from deploy.api_process import start_api_process
from deploy.embedded import EmbeddedBroker, EmbeddedRedis
from deploy.embedded.process import ManagedProcess
from deploy.settings import RunSettings
from tickwire.endpoints import remove_endpoints
from tickwire.errors import TickwireError
from tickwire.logging import quiet_library_logs
from tickwire.settings import redact_url
from tickwire.topic_admin import ensure_topics_of

log = structlog.get_logger(__name__)

FEED_BANNER = re.compile(rb"listening on ws://([^:/\s]+):(\d+)")


class StackError(TickwireError, RuntimeError):
    """A component of the stack failed to start or died."""


async def start_local_feed(settings: RunSettings, log_dir: Path, timeout: float = 20.0) -> tuple[ManagedProcess, str]:
    """Start the local Alpaca feed on a free port; returns it and the stream URL it serves."""
    feed = ManagedProcess(
        "feed",
        [sys.executable, "-m", "alpaca_feed", "serve", "--port", "0",
         "--rate", str(settings.feed_rate_per_symbol)],
        log_dir / "feed.log",
    )
    await feed.start(stdout=asyncio.subprocess.PIPE)
    assert feed.proc is not None and feed.proc.stdout is not None
    try:
        line = await asyncio.wait_for(feed.proc.stdout.readline(), timeout)
    except TimeoutError:
        line = b""
    match = FEED_BANNER.search(line)
    if match is None:
        await feed.stop()
        raise StackError(f"local feed did not start (see {feed.log_path}): {line!r}\n{feed.tail()}")
    host, port = match.group(1).decode(), match.group(2).decode()
    return feed, f"ws://{host}:{port}/v2/{settings.alpaca_feed}"


# Who stops first: producers of data before what they write to, so the ingest flushes into a live broker.
STOP_ORDER = ("ingest", "processor", "api", "feed")
CHILD_STOP_TIMEOUT_S = 6.0  # each child's bounded wait after SIGTERM (the ingest flushes within 5 s)


def stop_rank(child: ManagedProcess) -> int:
    """Position of ``child`` in :data:`STOP_ORDER` (by name prefix, e.g. "processor-1"); unknown ones after the API."""
    for rank, name in enumerate(STOP_ORDER):
        if child.name.startswith(name):
            return rank
    return STOP_ORDER.index("api") + 1


async def stop_in_order(children: list[ManagedProcess], timeout: float = CHILD_STOP_TIMEOUT_S) -> None:
    """Stop ``children`` one after another in :data:`STOP_ORDER`, each with a bounded wait, saying so."""
    for child in sorted(children, key=stop_rank):
        print(f"tickwire: stopping {child.name}", flush=True)
        await child.stop(timeout=timeout)


async def _stop_server(name: str, server: EmbeddedBroker | EmbeddedRedis) -> None:
    print(f"tickwire: stopping {name}", flush=True)
    await server.stop()


async def run_stack(settings: RunSettings, stop: asyncio.Event, fresh: bool = False) -> int:
    """Run until ``stop`` is set or a component dies; returns the process exit code. ``fresh``: the embedded
    broker starts with no data (what earlier runs left is deleted)."""
    log_dir = settings.run_dir / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    env = dict(os.environ)
    children: list[ManagedProcess] = []
    async with AsyncExitStack() as stack:
        # Exits run last-in first-out: endpoints file, children (in STOP_ORDER), then Redis, then the broker.
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            data_dir = settings.run_dir / "kafka"
            if fresh:
                shutil.rmtree(data_dir, ignore_errors=True)
            broker = EmbeddedBroker(data_dir, log_dir, cache=settings.cache_dir)
            print(f"tickwire: starting Kafka ({'the data of earlier runs' if broker.formatted else 'no data yet'} in "
                  f"{data_dir}{'' if broker.libs.is_dir() else '; fetching its jars with Maven, once'})", flush=True)
            await broker.start()
            stack.push_async_callback(_stop_server, "broker", broker)
            bootstrap = broker.bootstrap
        redis_url = settings.redis_url
        if not redis_url:
            redis = await EmbeddedRedis(log_dir).start()
            stack.push_async_callback(_stop_server, "redis", redis)
            redis_url = redis.url
        stack.push_async_callback(stop_in_order, children)
        stack.callback(remove_endpoints, settings)  # the stack is going: commands must not find it
        env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, REDIS_URL=redis_url)

        if settings.uses_local_feed:
            feed, stream_url = await start_local_feed(settings, log_dir)
            children.append(feed)
            env["ALPACA_STREAM_URL"] = stream_url
            # The feed also serves Alpaca's REST API: the ingest backfills its gaps from there.
            env.setdefault("ALPACA_DATA_URL", stream_url.replace("ws://", "http://", 1).split("/v2/", 1)[0])
        stream_url = env.get("ALPACA_STREAM_URL") or settings.stream_url
        # The same TLS/SASL options as every other client: a managed Kafka refuses a plaintext admin client.
        with quiet_library_logs("aiokafka"):  # a closed port: one line from the CLI, not one per attempt
            await ensure_topics_of(settings.model_copy(update={"kafka_bootstrap_servers": bootstrap}))

        python = sys.executable
        processor = ManagedProcess("processor", [python, "-m", "tickwire", "processor"], log_dir / "processor.log",
                                   {**env, "TICKWIRE_PROCESSOR_STAGES": "price"})
        pnl = ManagedProcess("processor-pnl", [python, "-m", "tickwire", "processor"], log_dir / "processor-pnl.log",
                             {**env, "TICKWIRE_PROCESSOR_STAGES": "pnl",
                              "TICKWIRE_PROCESSOR_METRICS_PORT": str(settings.pnl_metrics_port)})
        ingest = ManagedProcess("ingest", [python, "-m", "tickwire", "ingest"], log_dir / "ingest.log", env)
        for child in (processor, pnl, ingest):
            await child.start()
            children.append(child)
        print(f"tickwire: streaming {','.join(settings.symbols)} from {stream_url}\n"
              f"tickwire: kafka {bootstrap}, redis {redact_url(redis_url)}, logs in {log_dir}; Ctrl-C to stop",
              flush=True)
        api, api_line = await start_api_process(settings, env, log_dir)
        children.extend([api] if api else [])
        print(api_line, flush=True)

        monitor = asyncio.create_task(PriceMonitor(redis_url, settings.symbols).run(), name="monitor")
        exit_code = await _wait_for_stop_or_death(stop, children)
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
        print("tickwire: stopping...", flush=True)
    print("tickwire: stopped", flush=True)
    return exit_code


async def _wait_for_stop_or_death(stop: asyncio.Event, children: list[ManagedProcess]) -> int:
    waiters: dict[asyncio.Task[Any], ManagedProcess | None] = {asyncio.create_task(stop.wait()): None}
    for child in children:
        assert child.proc is not None
        waiters[asyncio.create_task(child.proc.wait())] = child
    done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done:
        exited = waiters[task]
        if exited is not None and exited.proc is not None and not stop.is_set():
            print(f"tickwire: {exited.name} exited with code {exited.proc.returncode}; "
                  f"last lines of {exited.log_path}:\n{exited.tail()}", file=sys.stderr, flush=True)
            return 1
    return 0






