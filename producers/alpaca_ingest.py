"""IngestService: Alpaca market data -> raw Kafka topics, surviving what Alpaca users lose data to.

One process, two roles. As *standby* it is fully started (Kafka producer, control topic followed, REST
client ready) but holds no Alpaca connection; as *active* (holder of the Redis lease) it streams:

    FeedSource's stream ─frame─► StreamRouter ──offer──► bounded queue ──batches──► Kafka raw topics
         │ ReconnectPolicy            │ clocks, halts          │ full: counted, gap opened
         │                            ▼                        ▼
    StalenessMonitor (mute?) ◄── last message per symbol   GapTracker ──► GapReconciler: feed.gaps + REST backfill

The stream comes from a FeedSource (producers/feed_source.py), chosen by TICKWIRE_FEED_SOURCE among
producers/feeds.py (the stock feed, producers/stock_source.py, by default); the source also routes the
message letters to the raw topics, says when data is expected, and provides the REST history for repairs.
Nothing here knows which feed it streams.
Subscriptions come from TICKWIRE_SYMBOLS (source ``config``) and the ``subscriptions`` control topic,
reference-counted by source (SubscriptionManager). Status goes to Redis every second and to Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, retry_if_result, wait_fixed
from tenacity.wait import WaitBaseT

from producers.backfill import GapReconciler
from producers.feed_source import FeedSource, FeedStream
from producers.feeds import open_feed_source
from producers.gaps import GapTracker, exchange_ns
from producers.ingest_status import IngestMetrics, IngestStatusReporter
from producers.kafka_publisher import RawEventPublisher
from producers.lease import IngestLease
from producers.reconnect_policy import ReconnectPolicy
from producers.resilient_stream import StreamFailure
from producers.settings import IngestSettings
from producers.staleness import StalenessMonitor
from producers.stream_router import StreamRouter
from producers.subscription_feed import SubscriptionRequestReader
from producers.subscription_manager import (
    CONFIG_SOURCE,
    SubscriptionChange,
    SubscriptionLimitError,
    SubscriptionManager,
)
from schemas.events import GapReason, IngestStatus, SubscriptionRequest
from schemas.timestamps import format_ns, now_ns, parse_ns
from schemas.topics import INGEST_STATUS_KEY, SUBSCRIPTIONS
from tickwire.errors import ConfigurationError
from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.tasks import cancel_until_done
from tickwire.topic_admin import ensure_topics_of

log = structlog.get_logger(__name__)

# The local feed accepts any credentials; alpaca-py needs some to send.
LOCAL_CREDENTIALS = ("tickwire-local", "tickwire-local")
CATCH_UP_TIMEOUT_S = 5.0
RESTART_AFTER_S = 1.0  # a background task that failed (a bug) starts again after this
GAP_CHECK_INTERVAL_S = 0.2
FLUSH_TIMEOUT_S = 5.0
# Auth refusals that retrying does not cure: report unhealthy at once.
PERMANENT_REFUSALS = frozenset({402, 409, 411})


def credentials(settings: IngestSettings) -> tuple[str, str]:
    """The Alpaca key pair, or placeholder credentials for a local feed."""
    if settings.alpaca_api_key is not None and settings.alpaca_secret_key is not None:
        return settings.alpaca_api_key.get_secret_value(), settings.alpaca_secret_key.get_secret_value()
    return LOCAL_CREDENTIALS


class IngestService:
    """The ingest: standby until it holds the lease, then streams Alpaca into Kafka until stopped."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        redis: Redis | None = None,
        instance: str | None = None,
        control_topic: str = SUBSCRIPTIONS.name,
        source: FeedSource | None = None,
    ) -> None:
        if not settings.kafka_bootstrap_servers:
            raise ConfigurationError("KAFKA_BOOTSTRAP_SERVERS is not set: start the ingest through `tickwire run`")
        self.settings = settings
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.source = source or open_feed_source(settings, credentials(settings))
        routing = self.source.routing
        bootstrap = bootstrap_list(settings.kafka_bootstrap_servers)
        self.publisher = RawEventPublisher(bootstrap, settings.ingest_queue_size, topics=routing.topics,
                                           **aiokafka_security(settings))
        self.policy = ReconnectPolicy(settings.reconnect_base_s, settings.reconnect_max_s,
                                      settings.reconnect_jitter, settings.max_reconnect_attempts)
        self.subscriptions = SubscriptionManager(settings.max_symbols)
        self.subscribed: set[str] = set()
        self.gaps = GapTracker(settings.gap_settle_s)
        self.staleness = StalenessMonitor(settings.mute_after_s, settings.quiet_after_s, self.source.market_hours(),
                                          routing.halts, routing.resumes)
        self.router = StreamRouter(self.publisher, self.gaps, self.staleness, self.subscribed, routing=routing)
        self.on_frame = self.router.on_frame  # the stream calls these directly (hot path)
        self.on_malformed = self.router.on_malformed
        self.reader = SubscriptionRequestReader(bootstrap, self._on_request, control_topic,
                                                **aiokafka_security(settings))
        self.redis = redis
        self.lease = IngestLease(redis, self.instance, settings.ingest_lease_ttl_s) if redis is not None else None
        self.reconciler = GapReconciler(self.publisher, self.source.history(), routing.topics,
                                        settings.backfill_max_window_s, settings.backfill_symbols_per_request)
        self.metrics = IngestMetrics()
        self.reporter = IngestStatusReporter(self.status, redis, self.metrics)
        self.role: Literal["active", "standby"] = "standby"
        self.stream: FeedStream | None = None
        self.connected_since_ns = 0
        self.quiet: tuple[str, ...] = ()
        self.reconnects_total = 0
        self._previous_received: Counter[str] = Counter()
        self._rates: dict[str, float] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set: close the socket, publish what is queued, return (well within 10 s)."""
        if self.settings.ingest_metrics_port:
            self.metrics.serve(self.settings.ingest_metrics_port)
        if self.reconciler.history is None:
            log.info("gap backfill off: set ALPACA_DATA_URL (local feed) or Alpaca credentials")
        try:
            async with asyncio.TaskGroup() as tasks:
                work = [tasks.create_task(_restarting(self.reporter.run, "ingest-status"), name="ingest-status"),
                        tasks.create_task(self._start_and_serve(), name="ingest")]
                await stop.wait()
                await cancel_until_done(work)  # the socket closes, then the lease is released
        finally:
            log.info("ingest stopping", instance=self.instance)
            with contextlib.suppress(Exception):
                await self.reader.stop()
            await self.publisher.close(FLUSH_TIMEOUT_S)
            self.metrics.close()
            log.info("ingest stopped", queue_left=self.publisher.depth, **self.publisher.counters.as_dict())

    async def _start_and_serve(self) -> None:
        """Kafka, the topics and the subscriptions first; then stand by for the lease and stream while it is ours."""
        await self.publisher.start()
        try:
            await ensure_topics_of(self.settings)
        except KafkaError as exc:  # e.g. no CreateTopics permission: the topics may exist, or be made by hand
            log.warning("cannot create the topics; create them with `tickwire create-topics`",
                        error=f"{type(exc).__name__}: {exc}")
        for symbol in self.settings.symbols:
            await self._change(functools.partial(self.subscriptions.want, symbol, CONFIG_SOURCE), quiet=True)
        await self.reader.start()
        await self.reader.catch_up(CATCH_UP_TIMEOUT_S)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_restarting(self.reader.run, "ingest-subscriptions"), name="ingest-subscriptions")
            tasks.create_task(_restarting(self._reconcile_forever, "ingest-gaps"), name="ingest-gaps")
            log.info("ingest ready", instance=self.instance, symbols=sorted(self.subscribed),
                     pending=list(self.subscriptions.pending), url=self.source.url, feed=self.source.name)
            while True:
                if self.lease is not None:
                    await self.lease.acquire()
                await self._serve_as_active()

    async def _serve_as_active(self) -> None:
        """Hold the feed's connection until the lease is lost (then return) or the ingest stops (cancelled);
        either way close the socket first, then release the lease."""
        self.role = "active"
        try:
            previous = await self._previous_active_status()
            stream = self.source.open_stream(self.policy, self)
            stream.register_symbols(self.subscriptions.active)  # no await before publishing it: no lost change
            self.stream = stream
            if previous is not None:
                self._open_takeover_gap(previous)
            log.info("ingest active: connecting to alpaca", instance=self.instance, url=self.source.url)
            async with asyncio.TaskGroup() as tasks:  # leaving it, the stream task has ended: the socket is closed
                # The stream reconnects by itself; if it ends anyway (a bug), again after the policy's delay.
                work = [tasks.create_task(_restarting(stream.serve, "alpaca stream", wait=self._policy_delay),
                                          name="alpaca-stream"),
                        tasks.create_task(_restarting(functools.partial(self._watch_staleness, stream),
                                                      "ingest-staleness"), name="ingest-staleness")]
                if self.lease is not None:
                    await self.lease.keep()  # returns once another ingest holds the lease
                    for task in work:
                        task.cancel()
        finally:
            if self.lease is not None:
                await self.lease.release()  # only now: the socket is closed, a standby may connect
            self.role = "standby"
            self.stream = None

    def _policy_delay(self, state: RetryCallState) -> float:
        return self.policy.next_delay()

    # --- stream observer ----------------------------------------------------------------------

    def on_connected(self) -> None:
        """A session is up and subscribed: gaps waiting for it start watching for first messages."""
        now = now_ns()
        self.connected_since_ns = now
        if self.stream is not None and self.stream.sessions > 1:
            self.reconnects_total += 1
        self.gaps.resumed(now)
        log.info("alpaca stream connected", url=self.source.url, symbols=len(self.subscribed),
                 reconnects=self.reconnects_total)

    def on_disconnected(self, failure: StreamFailure) -> None:
        """A session ended or an attempt failed: a lost session opens a gap."""
        if not failure.was_connected:
            return
        reason = GapReason.STALL if failure.kind == "stall" else GapReason.RECONNECT
        started = self.router.last_any_ns or self.connected_since_ns or now_ns()
        self.gaps.lost(reason, sorted(self.subscribed), self.router.last_queued_t, started, failure.describe())

    # --- subscriptions ------------------------------------------------------------------------

    async def _on_request(self, request: SubscriptionRequest) -> None:
        if request.source == CONFIG_SOURCE:
            log.debug("subscription request with source 'config' ignored: TICKWIRE_SYMBOLS defines it")
            return
        await self._change(lambda: self.subscriptions.apply(request))

    async def _change(self, update: Callable[[], SubscriptionChange], quiet: bool = False) -> None:
        try:
            change = update()
        except SubscriptionLimitError as exc:
            log.error(str(exc))
            return
        except ValueError as exc:
            log.warning("subscription request ignored", error=str(exc))
            return
        if not change:
            return
        self.subscribed.difference_update(change.removed)  # late data for them is dropped from now on
        for symbol in change.removed:
            self.gaps.forget(symbol)
            self.staleness.forget(symbol)
            self.router.forget(symbol)
        self.subscribed.update(change.added)
        if self.stream is not None:
            await self.stream.change_symbols(change.added, change.removed)
        if not quiet:
            log.info("subscriptions changed", added=list(change.added), removed=list(change.removed),
                     subscribed=len(self.subscribed), pending=len(self.subscriptions.pending))

    # --- staleness and gaps -------------------------------------------------------------------

    async def _watch_staleness(self, stream: FeedStream) -> None:
        interval = min(1.0, self.settings.mute_after_s / 4)
        while True:
            await asyncio.sleep(interval)  # the check period, not synchronisation
            if not stream.connected:
                self.quiet = ()
                continue
            verdict = self.staleness.check(now_ns(), self.subscribed, self.router.last_received_ns,
                                           self.router.last_any_ns, self.connected_since_ns)
            if verdict.quiet and set(verdict.quiet) != set(self.quiet):
                log.info("quiet symbols (no data while others flow)", symbols=list(verdict.quiet))
            self.quiet = verdict.quiet
            if verdict.mute:
                log.warning("alpaca socket is mute: no data while the market is open; reconnecting",
                            silent_s=round(verdict.silent_for_s, 1), symbols=len(self.subscribed))
                await stream.force_reconnect(f"mute socket: no data for {verdict.silent_for_s:.1f}s")

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(GAP_CHECK_INTERVAL_S)  # the check period, not synchronisation
            for incident in self.gaps.take_complete(now_ns()):
                await self.reconciler.reconcile(incident)

    async def _previous_active_status(self) -> IngestStatus | None:
        """The status another active ingest left (it died or stopped moments ago), if any."""
        if self.redis is None:
            return None
        try:
            raw = await self.redis.get(INGEST_STATUS_KEY)
            status = IngestStatus.model_validate_json(raw) if raw else None
        except (RedisError, ValidationError) as exc:
            log.warning("previous ingest status unreadable", error=str(exc))
            return None
        if status is None or status.role != "active" or status.instance == self.instance:
            return None
        return status

    def _open_takeover_gap(self, previous: IngestStatus) -> None:
        try:
            started = parse_ns(previous.updated_at)
        except ValueError:
            started = now_ns()
        last = {s: t for s, t in previous.last_exchange_at.items() if s in self.subscribed}
        self.gaps.lost(GapReason.TAKEOVER, sorted(self.subscribed), last, started,
                       f"took over from {previous.instance or 'another ingest'}")

    # --- status -------------------------------------------------------------------------------

    def status(self, elapsed_s: float | None = None) -> IngestStatus:
        """What the ingest is doing now. The reporter passes ``elapsed_s`` since its last call to update
        the message rates; other callers get the rates of the last report."""
        stream = self.stream if self.role == "active" else None
        connected = bool(stream and stream.connected)
        counters = self.publisher.counters
        received = Counter(counters.received)
        if elapsed_s is not None:
            self._rates = {k: round((v - self._previous_received[k]) / max(elapsed_s, 1e-3), 1)
                           for k, v in received.items()}
            self._previous_received = received
        failure = stream.last_failure if stream is not None else None
        healthy, detail = self._health(stream, connected, failure)
        return IngestStatus(
            role=self.role,
            connected=connected,
            healthy=healthy,
            stream_url=self.source.url,
            subscribed_symbols=sorted(self.subscribed),
            reconnect_attempts=self.policy.attempts,
            queue_depth=self.publisher.depth,
            overflow=counters.overflow,
            messages_received=dict(received),
            messages_published=dict(counters.published),
            last_message_at={s: format_ns(ns) for s, ns in self.router.last_received_ns.items()},
            gaps=self.gaps.opened,
            detail=detail,
            updated_at=format_ns(now_ns()),
            instance=self.instance,
            reconnects_total=self.reconnects_total,
            max_reconnect_attempts_exceeded=self.policy.exhausted,
            pending_symbols=list(self.subscriptions.pending),
            quiet_symbols=list(self.quiet),
            halted_symbols=sorted(self.staleness.halted & self.subscribed),
            messages_per_second=self._rates,
            last_exchange_at={s: format_ns(ns) for s, t in self.router.last_queued_t.items()
                              if (ns := exchange_ns(t)) is not None},
            backfilled=self.reconciler.backfilled,
            backfill_failures=self.reconciler.failures,
            malformed=self.router.malformed,
        )

    def _health(
        self, stream: FeedStream | None, connected: bool, failure: StreamFailure | None
    ) -> tuple[bool, str]:
        problems = []
        healthy = True
        if self.role == "standby":
            problems.append("standby: waiting for the lease on the alpaca connection")
        elif not connected:
            reason = failure.describe() if failure is not None else "connecting"
            wait = stream.next_attempt_in_s if stream is not None else None
            problems.append(f"reconnecting after {reason}" + (f"; next attempt in {wait:.1f}s" if wait else ""))
            if self.policy.exhausted or (failure is not None and failure.code in PERMANENT_REFUSALS):
                healthy = False
        if not self.publisher.kafka_ok or self.publisher.overflowing:
            healthy = False
            problems.append("kafka unreachable or slow: publishing is retried; the queue is "
                            + ("full, dropping messages (counted as overflow, repaired as gaps)"
                               if self.publisher.overflowing else "filling"))
        if self.subscriptions.pending:
            problems.append(f"symbol limit {self.settings.max_symbols} reached: "
                            f"{len(self.subscriptions.pending)} symbols wait for a slot")
        return healthy, "; ".join(problems)


async def _restarting(work: Callable[[], Awaitable[Any]], name: str, wait: WaitBaseT = wait_fixed(RESTART_AFTER_S)
                      ) -> None:
    """``work``, a task meant to run until cancelled, started again if it fails or ends anyway (a bug): one
    error line, then ``wait``. A bug in a background task costs its current round, not the ingest."""

    def report(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        why = f"{type(exc).__name__}: {exc}" if exc is not None else "ended"
        log.error(f"{name} failed; restarting it in {state.upcoming_sleep:.1f} s", error=why, exc_info=exc)

    await AsyncRetrying(retry=retry_if_exception_type(Exception) | retry_if_result(lambda _: True),
                        wait=wait, before_sleep=report)(work)


async def run_ingest(settings: IngestSettings, stop: asyncio.Event) -> None:
    """``tickwire ingest``: run the service until ``stop`` is set."""
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    if redis is None:
        log.warning("REDIS_URL is not set: no lease (run a single ingest) and no status for /health")
    try:
        await IngestService(settings, redis=redis).run(stop)
    finally:
        if redis is not None:
            await redis.aclose()


__all__ = ["LOCAL_CREDENTIALS", "IngestService", "credentials", "run_ingest"]
