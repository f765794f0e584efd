"""LatencyMetrics: each hop of a quote's life lands in its histogram, from payload and Kafka times."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from processors.latency import BUCKETS, LatencyMetrics, observe_many, timestamp_ns
from schemas.events import PositionPnL, PriceEvent
from schemas.timestamps import format_ns, parse_ns

T0 = 1_700_000_000_123_456_789
MS = 1_000_000


def price(t_ns: int, received_ns: int | None) -> PriceEvent:
    return PriceEvent(symbol="AAPL", bid=Decimal("1.00"), ask=Decimal("1.02"), mid=Decimal("1.01"),
                      spread=Decimal("0.02"), spread_bps=Decimal("198.0198"), bid_size=1, ask_size=1,
                      timestamp=format_ns(t_ns), exchange="V",
                      received_at=format_ns(received_ns) if received_ns else None)


def pnl(account: str, symbol: str, price_ns: int | None, updated_ns: int, source: str = "real-time") -> PositionPnL:
    return PositionPnL(account=account, symbol=symbol, qty=Decimal(1), avg_entry_price=Decimal(1),
                       mark_price=Decimal(1), unrealized_pnl=Decimal(0), price_source=source,  # type: ignore[arg-type]
                       price_timestamp=format_ns(price_ns) if price_ns else None, updated_at=format_ns(updated_ns))


def sample(registry: CollectorRegistry, channel: str, hop: str, suffix: str) -> float:
    value = registry.get_sample_value(f"tickwire_latency_seconds_{suffix}", {"channel": channel, "hop": hop})
    return 0.0 if value is None else value


@pytest.mark.parametrize("text", [format_ns(T0), "2026-03-01T00:00:00Z", "2026-03-01T01:00:00.5+01:00"])
def test_timestamp_ns_given_any_rfc3339_form_matches_parse_ns(text: str) -> None:
    """Test that the cached fast path and the general parser agree."""
    assert timestamp_ns(text) == parse_ns(text)


def test_observe_prices_given_one_quote_records_every_hop_in_seconds() -> None:
    """Test that exchange -> receive -> Kafka -> processed -> Redis each land in their own hop."""
    # Arrange
    registry = CollectorRegistry()
    metrics = LatencyMetrics(registry)
    event = price(T0, T0 + 2 * MS)
    # Act
    metrics.observe_prices([event], [T0 + 5 * MS], processed_ns=T0 + 9 * MS, projected_ns=T0 + 10 * MS)
    # Assert
    expected = {"ingest": 0.002, "kafka": 0.003, "process": 0.004, "redis": 0.001, "end_to_end": 0.010}
    for hop, seconds in expected.items():
        assert sample(registry, "price", hop, "count") == 1
        assert sample(registry, "price", hop, "sum") == pytest.approx(seconds)


def test_observe_prices_given_unknown_kafka_and_receive_times_skips_those_hops() -> None:
    """Test that hops whose start or end is unknown are not observed (rather than observed as nonsense)."""
    registry = CollectorRegistry()
    metrics = LatencyMetrics(registry)
    metrics.observe_prices([price(T0, None)], [0], processed_ns=T0 + MS, projected_ns=T0 + 2 * MS)
    assert [sample(registry, "price", hop, "count") for hop in ("ingest", "kafka", "process")] == [0, 0, 0]
    assert sample(registry, "price", "end_to_end", "sum") == pytest.approx(0.002)


def test_observe_prices_given_kafka_time_before_receive_clamps_at_zero() -> None:
    """Test that millisecond Kafka timestamps a little before the receive time count as 0, not negative."""
    registry = CollectorRegistry()
    LatencyMetrics(registry).observe_prices([price(T0, T0 + MS)], [T0], T0 + 2 * MS, T0 + 3 * MS)
    assert sample(registry, "price", "kafka", "sum") == 0.0


def test_observe_pnl_given_positions_sharing_a_mark_observes_the_mark_once_and_skips_closes() -> None:
    """Test that one mark revaluing many positions is one observation, and closing-price marks none."""
    # Arrange
    registry = CollectorRegistry()
    metrics = LatencyMetrics(registry)
    valued = [pnl(f"a{i}", "AAPL", T0, T0 + 3 * MS) for i in range(5)]
    valued += [pnl("a0", "MSFT", T0 - 10**12, T0 + 3 * MS, source="closing"), pnl("a0", "TSLA", None, T0)]
    # Act
    metrics.observe_pnl(valued, projected_ns=T0 + 4 * MS)
    # Assert
    assert sample(registry, "pnl", "end_to_end", "count") == 1
    assert sample(registry, "pnl", "end_to_end", "sum") == pytest.approx(0.004)
    assert sample(registry, "pnl", "valued", "sum") == pytest.approx(0.003)
    assert sample(registry, "pnl", "redis", "sum") == pytest.approx(0.001)


@given(st.lists(st.sampled_from(BUCKETS) | st.floats(min_value=0, max_value=100, allow_nan=False)))
def test_observe_many_given_any_values_exposes_what_observe_each_would(values: list[float]) -> None:
    """Test that the batched observe fills the same buckets, count and sum as prometheus_client's own."""
    # Arrange
    registries = CollectorRegistry(), CollectorRegistry()
    one, many = (Histogram("h", "h", buckets=BUCKETS, registry=registry) for registry in registries)
    # Act
    for value in values:
        one.observe(value)
    observe_many(many, values)
    # Assert
    lines = [[line for line in generate_latest(registry).splitlines() if b"_created" not in line]
             for registry in registries]
    assert lines[0] == lines[1]
