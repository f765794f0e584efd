"""The processor's Prometheus metrics, made by the process's builder (one registry per process, none at import)."""

from __future__ import annotations

import errno
from collections.abc import Callable

import structlog
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from processors.latency import LatencyMetrics

log = structlog.get_logger(__name__)


class ProcessorMetrics:
    """Counters by convention (``*_total``), consumer lag per partition, and the latency histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        quotes = Counter("tickwire_price_quotes", "Quotes the price stage finished, by outcome", ["outcome"],
                         registry=registry)
        self.accepted = quotes.labels("accepted")
        self.rejected = quotes.labels("rejected")
        self.rejected_by_reason = Counter("tickwire_price_rejected", "Dead-lettered records, by reason", ["reason"],
                                          registry=registry)
        self.marks = Counter("tickwire_marks", "Marks the price stage sent to the P&L processor", registry=registry)
        self.revaluations = Counter("tickwire_pnl_revaluations", "Positions revalued and emitted", registry=registry)
        self.pnl_rejected = Counter("tickwire_pnl_rejected", "P&L inputs that could not be used", registry=registry)
        self.lag = Gauge("tickwire_consumer_lag_records", "Records between a stage's position and the high watermark",
                         ["stage", "topic", "partition"], registry=registry)
        self.latency = LatencyMetrics(registry)

    def lag_of(self, stage: str) -> Callable[[TopicPartition, int], None]:
        """What a stage's progress reporter calls with each partition's lag."""
        def set_lag(tp: TopicPartition, records: int) -> None:
            self.lag.labels(stage, tp.topic, str(tp.partition)).set(records)
        return set_lag


def serve_metrics(registry: CollectorRegistry, port: int) -> int | None:
    """Serve ``registry`` on ``port`` (all interfaces, a daemon thread); returns the port, or None when off/taken."""
    if not port:
        return None
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.warning("metrics port in use, serving no metrics", port=port,
                    fix="set TICKWIRE_PROCESSOR_METRICS_PORT to a free port (0 = off)")
        return None
    return port
