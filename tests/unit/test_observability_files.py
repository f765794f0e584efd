"""Prometheus and Grafana in docker-compose.yml: what is scraped, what is provisioned, what the dashboard shows."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from producers.ingest_status import IngestMetrics
from schemas.events import IngestStatus

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TICKWIRE_ENV = SERVICES["api"]["environment"]
PROMETHEUS = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
DASHBOARD = json.loads((ROOT / "deploy/grafana/dashboards/tickwire.json").read_text())
EXPRESSIONS = [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]
# The port each role serves /metrics on, as the services' environment sets it.
METRICS_PORT = {"ingest": TICKWIRE_ENV["TICKWIRE_INGEST_METRICS_PORT"],
                "processor": TICKWIRE_ENV["TICKWIRE_PROCESSOR_METRICS_PORT"],
                "api": TICKWIRE_ENV["TICKWIRE_API_PORT"]}


def scrape_targets() -> set[str]:
    return {target for job in PROMETHEUS["scrape_configs"] for c in job["static_configs"] for target in c["targets"]}


def test_prometheus_given_compose_scrapes_every_ingest_processor_and_api_at_its_metrics_port() -> None:
    expected = {f"{name}:{METRICS_PORT[s['command'][0]]}" for name, s in SERVICES.items()
                if s.get("image") == "tickwire:local" and s["command"][0] in METRICS_PORT}
    assert len(expected) == 6  # two ingests, two price stages, the P&L stage, the API
    assert scrape_targets() == expected


def test_compose_given_metrics_ports_publishes_each_on_the_host_once() -> None:
    published = {}
    for name, service in SERVICES.items():
        role = service.get("command", [""])[0] if service.get("image") == "tickwire:local" else None
        if role in ("ingest", "processor"):
            port = next((p for p in service.get("ports", []) if p.endswith(f":{METRICS_PORT[role]}")), None)
            assert port is not None, f"{name} does not publish its metrics port"
            published[name] = port.partition(":")[0]
    assert len(set(published.values())) == len(published) == 5, published
    assert "9090:9090" in SERVICES["prometheus"]["ports"] and "3000:3000" in SERVICES["grafana"]["ports"]
    mounts = {v.split(":")[1] for v in SERVICES["prometheus"]["volumes"] if v.startswith("./")}
    assert "/etc/prometheus/prometheus.yml" in mounts


def test_grafana_given_provisioning_loads_the_dashboard_from_prometheus() -> None:
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"])
    provisioning = ROOT / "deploy/grafana/provisioning"
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"][0]
    provider = yaml.safe_load((provisioning / "dashboards/tickwire.yml").read_text())["providers"][0]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert provider["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    uids = {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}


def test_dashboard_given_the_issue_shows_rates_lag_latency_quantiles_dead_letters_and_gaps() -> None:
    text = "\n".join(EXPRESSIONS)
    assert "rate(tickwire_price_quotes_total" in text and "rate(tickwire_ingest_messages_received_total" in text
    assert "tickwire_consumer_lag_records" in text
    for channel in ("price", "pnl"):  # tick -> Redis and tick -> P&L
        selector = f'tickwire_latency_seconds_bucket{{channel="{channel}",hop="end_to_end"}}'
        assert any(e.startswith("histogram_quantile(0.99,") and selector in e for e in EXPRESSIONS), channel
    assert "tickwire_price_rejected_total" in text and "tickwire_pnl_rejected_total" in text
    assert "tickwire_ingest_gaps_total" in text


def test_dashboard_given_ingest_series_names_only_series_the_ingest_exports() -> None:
    metrics = IngestMetrics()
    metrics.latest = IngestStatus(
        role="active", connected=True, healthy=True, stream_url="ws://feed/v2/iex", subscribed_symbols=["AAPL"],
        reconnect_attempts=0, queue_depth=0, overflow=0, messages_received={"q": 1}, messages_published={"q": 1},
        last_message_at={}, gaps=0, detail="", updated_at="2026-12-02T00:00:00.000000000Z")
    exported = set(re.findall(r"^(tickwire_ingest_\w+)", generate_latest(metrics.registry).decode(), re.MULTILINE))
    used = {name for e in EXPRESSIONS for name in re.findall(r"tickwire_ingest_\w+", e)}
    assert used and used <= exported, used - exported


def test_dashboard_given_processor_series_names_only_series_the_processor_exports() -> None:
    from prometheus_client import CollectorRegistry

    from processors.metrics import ProcessorMetrics

    registry = CollectorRegistry()
    metrics = ProcessorMetrics(registry)
    metrics.accepted.inc()
    metrics.rejected_by_reason.labels("stale").inc()
    metrics.lag.labels("price", "quotes.raw", "0").set(0)
    metrics.latency.histogram.labels("price", "end_to_end").observe(0.01)
    exported = set(re.findall(r"^(tickwire_\w+?)(?:\{| )", generate_latest(registry).decode(), re.MULTILINE))
    ours = r"tickwire_(?:price|pnl|marks|consumer_lag|latency)\w*"
    used = {name for e in EXPRESSIONS for name in re.findall(ours, e)}
    assert used and used <= exported, used - exported
