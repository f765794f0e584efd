"""The benchmark's own arithmetic: percentiles, slopes, histogram quantiles, and the book's layout."""

import pytest

from bench.hops import difference, quantile_ms
from bench.positions import build_book, probe_symbols
from bench.stats import latency_summary, percentile, slope


def test_percentile_given_sorted_values_uses_nearest_rank() -> None:
    """Test that p50/p99/max follow the nearest-rank definition, and an empty list has none."""
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([], 50) is None
    assert latency_summary([2_000_000, 1_000_000]) == {"count": 2, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 2.0}


def test_slope_given_growing_backlog_is_its_rate_and_flat_is_zero() -> None:
    """Test the least-squares slope the sustainability verdict uses."""
    assert slope([(t, 100 + 40 * t) for t in range(10)]) == pytest.approx(40)
    assert slope([(t, 7) for t in range(10)]) == 0
    assert slope([(1, 1)]) == 0


def test_quantile_ms_given_histogram_difference_interpolates_inside_the_bucket() -> None:
    """Test PromQL-style quantiles on the counts observed between two scrapes."""
    before = {("price", "redis"): [(0.001, 10.0), (0.01, 10.0), (float("inf"), 10.0)]}
    after = {("price", "redis"): [(0.001, 10.0), (0.01, 110.0), (float("inf"), 110.0)]}
    points = difference(after, before)[("price", "redis")]
    assert points == [(0.001, 0.0), (0.01, 100.0), (float("inf"), 100.0)]
    assert quantile_ms(points, 0.5) == pytest.approx(5.5)  # halfway through the 1-10 ms bucket
    assert quantile_ms([(0.01, 0.0), (float("inf"), 0.0)], 0.5) is None


def test_build_book_given_symbols_spreads_positions_and_gives_the_probe_account_every_stride_symbol() -> None:
    """Test that M positions cover N symbols equally, no account holds a symbol twice, and account 0's
    symbols are the ones the probe follows."""
    symbols = [f"S{i:03d}" for i in range(100)]
    book = build_book(symbols, 1_000, 10, seed=0)
    per_symbol = {s: sum(1 for p in book if p.symbol == s) for s in symbols}
    assert set(per_symbol.values()) == {10}
    assert len({(p.account, p.symbol) for p in book}) == 1_000
    assert probe_symbols(book) == [f"S{i:03d}" for i in range(0, 100, 10)]
