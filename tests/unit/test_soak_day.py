"""The soak's trading day: its timeline, position fills, fault windows, the prices audit and the day's checks."""

import random
from array import array
from typing import Any

import orjson
import pytest

from bench.day_plan import FAULT, POSITIONS, RATE, history_for_mute, soak_actions
from bench.day_shape import DayShape
from bench.position_changes import PositionChanges, filled
from bench.positions import BenchPosition, build_book
from bench.price_audit import ExpectedPrices, add_price_times, compare, oldest_common
from bench.quote_flow import FlowReading, flow_totals, ingest_counts
from bench.soak_driver import FAULT_GRACE_S, FaultWindow
from bench.soak_report import soak_checks
from schemas.timestamps import format_ns

S = 1_000_000_000


def test_soak_actions_given_a_day_sets_each_phase_rate_fills_positions_every_30s_and_injects_its_faults() -> None:
    """Test the day's timeline: a rate at the start of each phase, position changes every 30 s (none at 0 or at the
    end), the faults at their share of the day, in time order."""
    day = DayShape(600_000, 360)
    actions = soak_actions(day, 30.0, (("drop", 0.3), ("mute", 0.7)))
    assert [(a.at_s, a.arg) for a in actions if a.kind == RATE] == [(p.start_s, p.rate) for p in day.phases]
    assert [a.at_s for a in actions if a.kind == POSITIONS] == [30.0 * k for k in range(1, 12)]
    assert [(a.at_s, a.arg) for a in actions if a.kind == FAULT] == [(pytest.approx(108), "drop"),
                                                                     (pytest.approx(252), "mute")]
    assert [a.at_s for a in actions] == sorted(a.at_s for a in actions)
    assert [a.kind for a in soak_actions(DayShape.flat(1_000, 60))] == [RATE] * 5  # a flat soak: one rate only


def test_history_for_mute_given_the_day_keeps_a_symbols_share_of_the_peak_over_the_mute_and_its_margin() -> None:
    """Test that the feed's REST history holds what the opening's rate sends one symbol during a mute: 8,667/s over
    100 symbols for 60 s of mute_after and 60 s of margin, a quarter more for the quotes' spread."""
    assert history_for_mute(DayShape(23_400_000, 5_400), 100, 60.0) == 13_000
    assert history_for_mute(DayShape(600_000, 360), 100, 15.0) > 33 * 75


def test_filled_given_a_position_moves_its_quantity_never_to_flat_and_its_price_by_at_most_1_percent() -> None:
    """Test one fill: the quantity changes by whole lots and stays open, the entry price moves a little."""
    rng = random.Random(1)
    position = BenchPosition("bench-0000", "S000", 10, "100.00")
    for _ in range(200):
        after = filled(position, rng)
        assert after.qty not in (0, position.qty) and after.qty % 10 == 0
        assert 99.0 <= float(after.avg_entry_price) <= 101.0
        assert (after.account, after.symbol) == (position.account, position.symbol)


def test_position_changes_given_a_book_fill_distinct_positions_and_remember_them() -> None:
    """Test that each round fills `count` different positions of the book and the book keeps their new values."""
    book = build_book([f"S{i:03d}" for i in range(100)], 1_000, 50, seed=0)
    changes = PositionChanges(book, publisher=None, count=5, seed=0)  # type: ignore[arg-type]
    changed = changes.next_changes()
    assert len({(p.account, p.symbol) for p in changed}) == 5
    assert all(p in changes.book and p not in book for p in changed)
    assert len({p.account for p in book}) == 20  # the day's book: 1,000 positions over 20 accounts


def _quote(symbol: str, t: int, bid: float = 10.0, ask: float = 10.02) -> bytes:
    return orjson.dumps({"S": symbol, "t": format_ns(t), "bp": bid, "bs": 1, "ap": ask, "as": 1,
                         "received_at": format_ns(t)})


def _price(symbol: str, t: int) -> bytes:
    return orjson.dumps({"symbol": symbol, "timestamp": format_ns(t), "bid": "10", "ask": "10.02"})


def test_price_audit_given_a_duplicate_and_a_missing_price_counts_one_of_each() -> None:
    """Test the audit's rule: valid quotes not older than their symbol's latest must be prices (a crossed quote and
    an out-of-order one need none); a price twice is a duplicate, a quote without its price a gap."""
    expected = ExpectedPrices(max_age_s=60)
    expected.add([_quote("A", 1 * S), _quote("A", 3 * S), _quote("A", 2 * S),  # 2 s is older than 3 s: rejected
                  _quote("A", 4 * S, bid=11, ask=10), _quote("B", 1 * S), _quote("B", 2 * S), None])
    published: dict[str, array] = {}
    add_price_times(published, [_price("A", 1 * S), _price("A", 3 * S), _price("A", 3 * S), _price("B", 1 * S)])
    assert {s: list(t) for s, t in expected.times.items()} == {"A": [1 * S, 3 * S], "B": [1 * S, 2 * S]}
    assert compare(expected.times, published) == (4, 1, 1)
    add_price_times(published, [_price("B", 2 * S)])
    assert compare(expected.times, published) == (4, 1, 0)


def test_price_audit_given_retention_cut_a_topic_compares_from_the_later_oldest_time_on() -> None:
    """Test that quotes older than what `prices` still holds (deleted by retention) are not gaps."""
    expected = {"A": array("q", [1, 2, 3, 4])}
    published = {"A": array("q", [3, 4])}
    assert compare(expected, published) == (4, 0, 2)
    assert compare(expected, published, oldest_common(expected, published)) == (2, 0, 0)


def test_flow_totals_given_a_mute_count_what_it_kept_from_the_ingest_apart_from_what_the_pipeline_lost() -> None:
    """Test the quotes' accounting: generated but never received is the faults' cost (undelivered); received but
    not published, or on quotes.raw but not finished, is lost; records on the topic beyond the live ones are repairs."""
    status = {"messages_received": {"q": 1_000, "t": 5}, "messages_published": {"q": 990}, "gaps": 1, "backfilled": 7,
              "backfill_failures": 0, "reconnects_total": 1, "overflow": 10}
    assert ingest_counts(status) == (1_000, 990, {"gaps": 1, "backfilled": 7, "backfill_failures": 0,
                                                  "reconnects_total": 1, "overflow": 10})
    assert ingest_counts(None)[:2] == (0, 0)
    zero = {"gaps": 0, "backfilled": 0, "backfill_failures": 0, "reconnects_total": 0, "overflow": 0}
    before = FlowReading(generated=100, received=100, published=100, appended=100, finished=100, ingest=zero)
    after = FlowReading(generated=1_300, received=1_100, published=1_090, appended=1_095, finished=1_094,
                        ingest={**zero, "gaps": 1, "backfilled": 7, "overflow": 10})
    totals = flow_totals(before, after, drained=True)
    assert (totals["quotes_in"], totals["undelivered"], totals["repaired"]) == (1_200, 200, 5)
    assert totals["lost"] == 10 + 1  # 10 the ingest overflowed, 1 on the topic never finished
    assert totals["ingest"]["gaps"] == 1
    assert flow_totals(before, after, drained=False)["lost"] is None


def test_fault_window_covers_rows_from_the_injection_until_its_grace_after_recovery() -> None:
    """Test which windows a fault labels: not before it, during it, within the grace after it, and an open fault
    up to now."""
    grace = int(FAULT_GRACE_S * S)
    fault = FaultWindow("mute", began_ns=100 * S, ended_ns=170 * S, recovered=True)
    assert not fault.covers(0, 100 * S, now_ns=500 * S)
    assert fault.covers(90 * S, 110 * S, now_ns=500 * S)
    assert fault.covers(170 * S + grace - 1, 400 * S, now_ns=500 * S)
    assert not fault.covers(170 * S + grace, 400 * S, now_ns=500 * S)
    assert FaultWindow("drop", began_ns=100 * S).covers(300 * S, 301 * S, now_ns=300 * S)


def _day(**change: Any) -> dict[str, Any]:
    """A day's results that meet every check; ``change`` replaces parts of it."""
    rows = [{"t_s": t, "rss_mib": {"broker": 600.0, "ingest": 100.0, "feed": feed, "bench": 100.0},
             "stream_disk_mib": 100.0} for t, feed in ((10, 50.0), (30, 100.0), (60, 400.0))]
    soak = {"day": {"quotes": 600_000}, "baseline_s": 20, "window_s": 10, "rows": rows,
            "rss_baseline_mib": {"broker": 600.0, "ingest": 100.0, "feed": 100.0, "bench": 100.0},
            "retention": {"hours": 0.25, "mb_per_partition": 16, "partitions": 4, "bound_mib": 200.0},
            "disk_end": {"total_mib": 150.0, "stream_mib": 100.0},
            "tick_to_redis_first": {"p99_ms": 20.0}, "tick_to_redis_last": {"p99_ms": 80.0},
            "health": {"every_s": 5, "counts": {"healthy": 10, "unhealthy": 1}, "outside_faults": {"healthy": 10}},
            "faults": [{"fault": "drop", "began_s": 30, "ended_s": 36, "recovered": True, "detail": ""}],
            "totals": {"lost": 0}, "price_audit": {"expected": 1_000, "duplicates": 2, "gaps": 0},
            "oracle": {"mismatches": 0, "summary": "mismatches 0"}}
    soak.update(change)
    return soak


@pytest.mark.parametrize(("change", "failed"), [
    ({}, None),  # p99 4x at the close: a day's rates differ, not judged; duplicates reported, not judged
    ({"rows": [{"t_s": 60, "rss_mib": {"broker": 600.0, "ingest": 116.0}, "stream_disk_mib": 100.0}]}, "RSS"),
    ({"health": {"every_s": 5, "counts": {"unhealthy": 1}, "outside_faults": {"healthy": 9, "unhealthy": 1}}},
     "/health"),
    ({"health": {"every_s": 5, "counts": {}, "outside_faults": {"unreachable": 1}}}, "/health"),
    ({"faults": [{"fault": "mute", "began_s": 30, "ended_s": 330, "recovered": False, "detail": "timed out"}]},
     "came back"),
    ({"price_audit": {"expected": 1_000, "duplicates": 0, "gaps": 3}}, "nothing lost"),
    ({"totals": {"lost": None}}, "nothing lost"),
    ({"oracle": {"mismatches": 1, "summary": "mismatches 1"}}, "oracle"),
])
def test_soak_checks_given_a_day_judge_rss_growth_disk_health_outside_faults_recovery_losses_and_the_oracle(
        change: dict[str, Any], failed: str | None) -> None:
    """Test the day's checks: every pipeline process's RSS at most 15 % above its value at the baseline (the feed
    and the bench, the harness, not judged; shrinking is fine), /health never unhealthy or unanswered outside
    the faults' windows, every fault recovered, nothing lost (lost 0 and no gap on `prices`), 0 mismatches."""
    checks = soak_checks(_day(**change))
    assert not any("p99" in text for text, _ in checks)
    assert [text.split(":")[0] for text, met in checks if not met] == \
        ([] if failed is None else [next(text.split(":")[0] for text, _ in checks if failed in text)])
