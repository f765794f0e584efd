"""BenchStack: one design under test on the embedded stack, with the feed under the benchmark's control.

``pipeline``: the embedded Kafka broker (fresh data in ``<run dir>/pipeline/broker``), redis-server, the
feed, then ``tickwire processor`` (the price stage and the P&L stage as two processes unless
``--stages-together``) and ``tickwire ingest``, exactly as ``tickwire run`` starts them, on topics
created with the pipeline's own settings (partitions, retention); ``pipeline-eos`` the same under
``TICKWIRE_PROCESSING_GUARANTEE=exactly_once``. ``direct``: redis-server, the feed and the
seeds' direct design. Any other design name: redis-server and the feed only (for the ceilings).
Everything runs in its own process on free loopback ports; logs go to ``<run dir>/<design>/logs``.
A soak's pipeline also runs ``tickwire api`` (its ``/health`` is sampled) and, as ``tickwire run`` does, points
the ingest at the feed's REST history (``ALPACA_DATA_URL``), so the gaps of its injected faults are repaired.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
import orjson
from redis.asyncio import Redis

from bench.config import GUARANTEES, BenchConfig
from bench.direct_design import COUNTS_KEY as DIRECT_COUNTS_KEY
from bench.feed_driver import CONTROL_CHANNEL
from bench.feed_driver import COUNTS_KEY as FEED_COUNTS_KEY
from deploy.embedded import EmbeddedBroker, EmbeddedRedis
from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port, wait_until_ready
from schemas.topics import ALL_TOPICS, INGEST_STATUS_KEY, PROCESSOR_STATS_KEY, TopicSpec, internal_topics
from tickwire.settings import TickwireSettings
from tickwire.topic_admin import ensure_topics_of

FEED_BANNER = re.compile(rb"listening on ws://([^:/\s]+):(\d+)")
FEED = "sip"  # no symbol cap on the local feed's sip, unlike iex's 30
POLL_S = 0.1
STALL_S = 5.0  # a backlog that has not moved for this long is not coming
API_READY_S = 60.0


class BenchStackError(RuntimeError):
    """A component did not start or died."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Quotes the feed generated, quotes the design finished with (written or rejected), ingest overflow."""

    sent: int
    processed: int
    overflow: int = 0
    at: float = 0.0  # monotonic time of the reading

    @property
    def backlog(self) -> int:
        """Quotes generated and not yet finished."""
        return self.sent - self.processed


class BenchStack:
    """Start with ``async with BenchStack(cfg, design) as stack``; everything stops on exit, in reverse."""

    def __init__(self, cfg: BenchConfig, design: str) -> None:
        self.cfg = cfg
        self.design = design
        self.log_dir = cfg.run_dir / design / "logs"
        self.broker_dir = cfg.run_dir / design / "broker"
        self.processes: dict[str, ManagedProcess] = {}
        self.broker: EmbeddedBroker | None = None
        self.bootstrap: str | None = None
        self.redis_url = ""
        self.feed_url = ""
        self.api_url = ""  # a soak's API (``tickwire api``), where /health is asked
        self.metrics_port = 0  # the first price worker's (or whole worker's) /metrics
        self.pnl_metrics_port = 0  # the first P&L worker's, when the stages run apart
        self.redis: Redis | None = None
        self._exit = AsyncExitStack()

    # --- life cycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> BenchStack:
        for old in (self.log_dir, self.broker_dir):  # a run starts from nothing: no topics, offsets or logs
            shutil.rmtree(old, ignore_errors=True)
        self.log_dir.mkdir(parents=True)
        try:
            await self._start()
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    async def _start(self) -> None:
        redis_server = await self._exit.enter_async_context(EmbeddedRedis(self.log_dir))
        self.processes["redis"] = redis_server.process
        self.redis_url = redis_server.url
        self.redis = Redis.from_url(self.redis_url)
        self._exit.push_async_callback(self.redis.aclose)
        if self.design in GUARANTEES:
            broker = self.broker = await self._exit.enter_async_context(EmbeddedBroker(self.broker_dir, self.log_dir))
            self.processes["broker"] = broker.process
            self.bootstrap = broker.bootstrap
            await ensure_topics_of(self.settings, self.topics)
        stream_url = self.feed_url = await self._start_feed()
        if self.design in GUARANTEES:
            env = self._env(stream_url)
            python = sys.executable
            for index in range(self.cfg.workers):
                # More workers share the partitions (and the tables with them); the first serves the metrics.
                name = "processor" if index == 0 else f"processor{index + 1}"
                worker_env = env if index == 0 else {**env, "TICKWIRE_PROCESSOR_METRICS_PORT": "0",
                                                     "TICKWIRE_RUN_DIR": f"{env['TICKWIRE_RUN_DIR']}/{name}",
                                                     "TICKWIRE_PROCESSOR_INSTANCE": str(index)}
                if self.cfg.stages_apart:
                    if index == 0:
                        self.pnl_metrics_port = free_port()
                    pnl_port = self.pnl_metrics_port if index == 0 else 0
                    await self._start_process(name, [python, "-m", "tickwire", "processor"],
                                              {**worker_env, "TICKWIRE_PROCESSOR_STAGES": "price"})
                    await self._start_process(f"{name}-pnl", [python, "-m", "tickwire", "processor"],
                                              {**worker_env, "TICKWIRE_PROCESSOR_STAGES": "pnl",
                                               "TICKWIRE_PROCESSOR_METRICS_PORT": str(pnl_port)})
                else:
                    await self._start_process(name, [python, "-m", "tickwire", "processor"], worker_env)
            await self._start_process("ingest", [python, "-m", "tickwire", "ingest"], env)
            if self.cfg.soak_s:
                await self._start_api(env)
        elif self.design == "direct":
            await self._start_process("direct", [sys.executable, "-m", "bench.direct_design", "--url", stream_url,
                                                 "--redis", self.redis_url,
                                                 "--symbols", ",".join(self.cfg.symbol_names())], dict(os.environ))

    async def _start_feed(self) -> str:
        history = ["--history-limit", str(self.cfg.feed_history)] if self.cfg.feed_history else []
        feed = ManagedProcess("feed", [sys.executable, "-m", "bench.feed_driver", "--symbols", str(self.cfg.symbols),
                                       "--redis", self.redis_url, "--seed", str(self.cfg.seed),
                                       "--shape", self.cfg.feed_shape, *history],
                              self.log_dir / "feed.log")
        await feed.start(stdout=asyncio.subprocess.PIPE)
        self._exit.push_async_callback(feed.stop)
        self.processes["feed"] = feed
        assert feed.proc is not None and feed.proc.stdout is not None
        try:
            line = await asyncio.wait_for(feed.proc.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        match = FEED_BANNER.search(line)
        if match is None:
            raise BenchStackError(f"feed did not start: {line!r}\n{feed.tail()}")
        return f"ws://{match.group(1).decode()}:{match.group(2).decode()}/v2/{FEED}"

    async def _start_api(self, env: dict[str, str]) -> None:
        port = free_port()
        await self._start_process("api", [sys.executable, "-m", "tickwire", "api"],
                                  {**env, "TICKWIRE_API_PORT": str(port)})
        self.api_url = f"http://127.0.0.1:{port}"

        async def answers() -> None:
            async with aiohttp.ClientSession() as http, http.get(f"{self.api_url}/health") as response:
                await response.read()

        await wait_until_ready("api", answers, API_READY_S, self.processes["api"])

    async def _start_process(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        if name in self.cfg.profile:  # argv is [python, "-m", module, ...]: profile the same module
            argv = [argv[0], "-m", "bench.cpu_profile", str(self.log_dir.parent / f"{name}.prof"), *argv[1:]]
        process = ManagedProcess(name, argv, self.log_dir / f"{name}.log", env)
        await process.start()
        self._exit.push_async_callback(process.stop, 8.0)
        self.processes[name] = process

    def _env(self, stream_url: str = "") -> dict[str, str]:
        self.metrics_port = self.metrics_port or free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap or "",
            "REDIS_URL": self.redis_url,
            "ALPACA_STREAM_URL": stream_url,
            "ALPACA_FEED": FEED,
            "TICKWIRE_SYMBOLS": ",".join(self.cfg.symbol_names()),
            "TICKWIRE_MAX_SYMBOLS": str(max(self.cfg.symbols, 30)),
            "TICKWIRE_PROCESSOR_METRICS_PORT": str(self.metrics_port),
            "TICKWIRE_PROCESSOR_APP_ID": "tickwire-bench",
            "TICKWIRE_RUN_DIR": str(self.cfg.run_dir / self.design),
            "TICKWIRE_LOG_LEVEL": "WARNING",
        }
        if self.design in GUARANTEES:
            env["TICKWIRE_PROCESSING_GUARANTEE"] = GUARANTEES[self.design]
        if self.cfg.soak_s and stream_url:  # the feed serves Alpaca's REST API too: the ingest repairs gaps there
            env["ALPACA_DATA_URL"] = stream_url.replace("ws://", "http://", 1).split("/v2/", 1)[0]
        env.update(self.cfg.env)
        return env

    # --- control and observation ---------------------------------------------------------------

    @property
    def settings(self) -> TickwireSettings:
        """The settings the pipeline's processes read (the bench's environment and ``--set``)."""
        return TickwireSettings(**self._env())

    @property
    def topics(self) -> tuple[TopicSpec, ...]:
        """Every topic the pipeline uses: tickwire's and the processors' internal ones."""
        return (*ALL_TOPICS, *internal_topics(self.settings.processor_app_id))

    @property
    def metrics_ports(self) -> list[int]:
        """The processors' /metrics ports the bench scrapes (the price stage's, and the P&L stage's when apart)."""
        return [port for port in (self.metrics_port, self.pnl_metrics_port) if port]

    @property
    def pids(self) -> dict[str, int]:
        """Process name -> pid of everything this stack started."""
        return {name: p.pid for name, p in self.processes.items() if p.pid is not None}

    def start_profiles(self) -> None:
        """Tell the processes run under bench.cpu_profile to start profiling now."""
        for name in self.cfg.profile:
            process = self.processes.get(name)
            if process is not None and process.pid is not None:
                os.kill(process.pid, signal.SIGRTMIN)

    def check_alive(self) -> None:
        """Raise if a component has exited."""
        for name, process in self.processes.items():
            if not process.running:
                raise BenchStackError(f"{self.design}: {name} exited (see {process.log_path}):\n{process.tail(30)}")

    async def set_rate(self, total_per_s: float) -> None:
        """Drive the feed at ``total_per_s`` quotes per second over all symbols (0 pauses it)."""
        assert self.redis is not None
        await self.redis.publish(CONTROL_CHANNEL, f"rate {total_per_s}")

    async def burst(self, multiple: float, seconds: float) -> None:
        """``multiple`` x the current rate for ``seconds``."""
        assert self.redis is not None
        await self.redis.publish(CONTROL_CHANNEL, f"burst {multiple} {seconds}")

    async def close_market(self) -> None:
        """Have the feed halt every symbol: the end of a day, not a mute socket to the ingest."""
        assert self.redis is not None
        await self.redis.publish(CONTROL_CHANNEL, "close")

    async def inject_fault(self, fault: str) -> None:
        """Have the feed inject ``fault`` (``drop`` or ``mute``, see bench.feed_faults); it records when it was over."""
        assert self.redis is not None
        await self.redis.publish(CONTROL_CHANNEL, f"fault {fault}")

    async def counts(self) -> Counts:
        """The feed's and the design's counters now."""
        assert self.redis is not None
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(FEED_COUNTS_KEY, "quotes")
        if self.design in GUARANTEES:
            pipe.hgetall(PROCESSOR_STATS_KEY)
            pipe.get(INGEST_STATUS_KEY)
        else:
            pipe.hgetall(DIRECT_COUNTS_KEY)
        sent, stats, *status = await pipe.execute()
        if self.design in GUARANTEES:
            processed = sum(int(v) for k, v in stats.items() if k == b"accepted" or k.startswith(b"rejected."))
            overflow = int(orjson.loads(status[0]).get("overflow", 0)) if status and status[0] else 0
        else:
            processed = int(stats.get(b"handled", 0))
            overflow = 0
        return Counts(int(sent or 0), processed, overflow, time.monotonic())

    async def wait_until_drained(self, timeout_s: float, settle_s: float = 0.5) -> tuple[Counts, bool]:
        """Wait until every generated quote is finished or nothing has moved for ``STALL_S``.

        Returns the counts and True then (a backlog left is lost), or False if ``timeout_s`` ran out
        while quotes were still being finished (the backlog is not known to be lost).
        """
        deadline = time.monotonic() + timeout_s
        last = await self.counts()
        moved_at = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)  # poll interval of a condition with a deadline
            self.check_alive()
            now = await self.counts()
            if now.processed != last.processed:
                moved_at = time.monotonic()
            still = time.monotonic() - moved_at
            if (now.backlog <= 0 and still >= settle_s) or still > STALL_S:
                return now, True
            last = now
        return last, False

    async def wait_for(self, predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
        """Poll ``await predicate()`` until true; fail with ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not await predicate():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchStackError(f"{self.design}: timed out after {timeout_s:.0f}s waiting for {what}")
            await asyncio.sleep(POLL_S)  # poll interval of a condition with a deadline

