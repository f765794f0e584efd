"""IngestStatusReporter and IngestMetrics: what the ingest is doing, for /health, logs and Prometheus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.events import IngestStatus
from schemas.topics import INGEST_STATUS_KEY

log = structlog.get_logger(__name__)

STATUS_INTERVAL_S = 1.0
STATUS_TTL_S = 5  # a dead ingest's status disappears within seconds
LOG_EVERY_S = 10.0


class IngestStatusReporter:
    """Every second: builds the :class:`IngestStatus`, writes it to Redis ``INGEST_STATUS_KEY`` with a short
    TTL and hands it to the metrics; logs a summary line every ``log_every_s``.

    A standby writes only when no status exists (``NX``), so it never hides the active ingest's status.
    Redis errors are logged once per outage; the ingest itself is unaffected.
    """

    def __init__(
        self,
        snapshot: Callable[[float | None], IngestStatus],
        redis: Redis | None,
        metrics: IngestMetrics | None = None,
        interval_s: float = STATUS_INTERVAL_S,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        self._snapshot = snapshot
        self._redis = redis
        self._metrics = metrics
        self._interval_s = interval_s
        self._log_every_s = log_every_s
        self._redis_down = False
        self.latest: IngestStatus | None = None

    async def run(self) -> None:
        """Report forever (cancel to stop)."""
        last = last_log = time.monotonic()
        while True:
            now = time.monotonic()
            self.report(now - last)
            last = now
            await self.write()
            if now - last_log >= self._log_every_s:
                last_log = now
                self._log(self.latest)
            await asyncio.sleep(self._interval_s)  # the reporting period, not synchronisation

    def report(self, elapsed_s: float) -> IngestStatus:
        """Take a snapshot now (rates over ``elapsed_s``) and publish it to the metrics."""
        self.latest = status = self._snapshot(elapsed_s if elapsed_s > 0 else None)  # no rate from 0 s
        if self._metrics is not None:
            self._metrics.latest = status
        return status

    async def write(self) -> None:
        """Write the latest snapshot to Redis."""
        status = self.latest
        if self._redis is None or status is None:
            return
        try:
            await self._redis.set(INGEST_STATUS_KEY, status.to_json(), ex=STATUS_TTL_S, nx=status.role == "standby")
        except RedisError as exc:
            if not self._redis_down:
                log.error("redis unreachable: ingest status not written", error=str(exc))
            self._redis_down = True
            return
        if self._redis_down:
            log.warning("redis reachable again: ingest status written")
        self._redis_down = False

    @staticmethod
    def _log(status: IngestStatus | None) -> None:
        if status is None:
            return
        log.info("ingest status", role=status.role, connected=status.connected, healthy=status.healthy,
                 symbols=len(status.subscribed_symbols), per_second=status.messages_per_second,
                 queue_depth=status.queue_depth, overflow=status.overflow, gaps=status.gaps,
                 reconnect_attempts=status.reconnect_attempts, detail=status.detail or None)


class IngestMetrics(Collector):
    """Prometheus counters and gauges read from the latest status at scrape time (nothing on the hot path)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(self)
        self.latest: IngestStatus | None = None
        self._server: Any = None

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on ``port`` (prometheus_client's HTTP server thread).

        A port in use (a second ingest on one host, e.g. a standby) is one warning, not a failed ingest.
        """
        try:
            self._server, _ = start_http_server(port, registry=self.registry)
        except OSError as exc:
            log.warning("ingest metrics not served: port in use (set TICKWIRE_INGEST_METRICS_PORT to a free port, "
                        "0 = off)", port=port, error=str(exc))
            return
        log.info("ingest metrics served", port=port, url=f"http://localhost:{port}/metrics")

    def close(self) -> None:
        """Stop the HTTP server if one runs."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def collect(self) -> Iterator[Metric]:
        """Metric families of the latest status."""
        s = self.latest
        if s is None:
            return
        yield _gauge("tickwire_ingest_active", "1 if this ingest holds the Alpaca connection", s.role == "active")
        yield _gauge("tickwire_ingest_connected", "1 while the Alpaca stream is connected", s.connected)
        yield _gauge("tickwire_ingest_healthy", "1 while the ingest considers itself healthy", s.healthy)
        yield _gauge("tickwire_ingest_subscribed_symbols", "symbols subscribed", len(s.subscribed_symbols))
        yield _gauge("tickwire_ingest_pending_symbols", "symbols over the symbol limit", len(s.pending_symbols))
        yield _gauge("tickwire_ingest_reconnect_attempts", "failed connection attempts in a row",
                     s.reconnect_attempts)
        yield _gauge("tickwire_ingest_queue_depth", "messages waiting for Kafka", s.queue_depth)
        yield _counter("tickwire_ingest_reconnects", "successful reconnects", s.reconnects_total)
        yield _counter("tickwire_ingest_overflow", "messages dropped because the queue was full", s.overflow)
        yield _counter("tickwire_ingest_gaps", "gap events published", s.gaps)
        yield _counter("tickwire_ingest_backfilled", "messages re-published from REST", s.backfilled)
        yield _counter("tickwire_ingest_malformed", "undecodable frames or messages", s.malformed)
        for name, help_text, values in (
            ("tickwire_ingest_messages_received", "messages received by Alpaca type", s.messages_received),
            ("tickwire_ingest_messages_published", "messages published by Alpaca type", s.messages_published),
        ):
            family = CounterMetricFamily(name, help_text, labels=["type"])
            for kind, value in sorted(values.items()):
                family.add_metric([str(kind)], value)
            yield family
        rate = GaugeMetricFamily("tickwire_ingest_messages_per_second", "receive rate by type", labels=["type"])
        for kind, per_second in sorted(s.messages_per_second.items()):
            rate.add_metric([str(kind)], per_second)
        yield rate


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=float(value))


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=float(value))
