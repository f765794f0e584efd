"""Kafka connection helpers shared by the ingest, the processor and the tools."""

from __future__ import annotations


def bootstrap_list(servers: str) -> list[str]:
    """'h1:9092,h2:9092' (or ';'-separated) -> ['h1:9092', 'h2:9092']."""
    items = [s.strip() for s in servers.replace(";", ",").split(",")]
    hosts = [s.removeprefix("kafka://") for s in items if s]
    if not hosts:
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS is empty")
    return hosts


def faust_broker_url(servers: str) -> str:
    """Faust's broker URL form: 'kafka://h1:9092;h2:9092'."""
    return "kafka://" + ";".join(bootstrap_list(servers))
