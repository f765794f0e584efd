"""Builds the Faust application of the price processor (wiring only; agents live in processors/agents/)."""

from __future__ import annotations

import faust

from processors.settings import ProcessorSettings
from tickwire.kafka import faust_broker_url, faust_credentials


def build_app(settings: ProcessorSettings) -> faust.App:
    """A Faust app tuned for the embedded broker as well as Redpanda (see docs in the README)."""
    if not settings.kafka_bootstrap_servers:
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS is not set: start the processor through `tickwire run`")
    return faust.App(
        settings.processor_app_id,
        broker=faust_broker_url(settings.kafka_bootstrap_servers),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        # A group join takes session_timeout/2 on Tansu; 6 s keeps start-up and failover near 5-10 s.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        # Tansu's ListOffsets(latest) is wrong for multi-record batches, which truncates table
        # recovery from the changelog; one record per batch avoids it.
        producer_max_batch_size=1,
        producer_linger=0.0,
        web_enabled=False,
        # Faust keeps per-app files here; with the memory store that is only its lock and version.
        datadir=str(settings.run_dir / f"faust-{settings.processor_app_id}"),
    )


settings = ProcessorSettings()
app = build_app(settings)
