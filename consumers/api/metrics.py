"""Prometheus metrics: request counts and latency per route, plus the pipeline's own stats read from Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.events import IngestStatus

UNMATCHED_ROUTE = "unmatched"


class ApiMetrics:
    """The service's metrics in a registry of its own (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("tickwire_api_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("tickwire_api_request_seconds", "Time to the response's first byte",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.processor = ProcessorStatsCollector()
        self.registry.register(self.processor)
        self.redis_up = Gauge("tickwire_redis_up", "1 when Redis answered the last scrape", registry=self.registry)
        self.ingest_up = Gauge("tickwire_ingest_up", "1 while the ingest reports its status",
                               registry=self.registry)
        self.ingest_connected = Gauge("tickwire_ingest_connected", "1 while the ingest's WebSocket is connected",
                                      registry=self.registry)
        self.ingest_symbols = Gauge("tickwire_ingest_subscribed_symbols", "Symbols the ingest streams",
                                    registry=self.registry)
        self.ingest_reconnects = Gauge("tickwire_ingest_reconnect_attempts", "The ingest's reconnect attempts",
                                       registry=self.registry)
        self.ingest_queue = Gauge("tickwire_ingest_queue_depth", "Messages waiting in the ingest's queue",
                                  registry=self.registry)

    def set_pipeline_stats(self, processor: dict[str, int] | None, ingest: IngestStatus | None) -> None:
        """Refresh the gauges from a scrape's reads (``processor`` None: Redis did not answer)."""
        self.redis_up.set(0 if processor is None else 1)
        if processor is not None:
            self.processor.latest = dict(processor)
        self.ingest_up.set(1 if ingest else 0)
        self.ingest_connected.set(1 if ingest and ingest.connected else 0)
        self.ingest_symbols.set(len(ingest.subscribed_symbols) if ingest else 0)
        self.ingest_reconnects.set(ingest.reconnect_attempts if ingest else 0)
        self.ingest_queue.set(ingest.queue_depth if ingest else 0)


class ProcessorStatsCollector(Collector):
    """Counter ``tickwire_processor_stats_total{name}``: the processor's Redis counters, read at scrape time.

    They only ever grow (a Redis flush starts them again, which Prometheus' rate() reads as a counter reset);
    the processor serves its own, richer metrics on its own port.
    """

    def __init__(self) -> None:
        self.latest: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        """One counter family, a sample per stored counter (kept from the last scrape Redis answered)."""
        family = CounterMetricFamily("tickwire_processor_stats", "The processor's counters in Redis "
                                     "(tickwire:stats:processor: accepted, published, rejected.<reason>)",
                                     labels=["name"])
        for name, value in sorted(self.latest.items()):
            family.add_metric([name], float(value))
        yield family


class RequestMetricsMiddleware:
    """Pure ASGI middleware (it must not buffer the SSE stream): counts and times each request by route."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(scope["method"], _route(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    # The route template, not the raw path, so /prices/AAPL and /prices/MSFT share one series.
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED_ROUTE) if route is not None else UNMATCHED_ROUTE
