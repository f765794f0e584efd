"""The ingest's pure rules: reconnect backoff, reference-counted subscriptions, staleness, gap bookkeeping."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgpack
import pytest

from producers.gaps import GapTracker, exchange_ns
from producers.reconnect_policy import ReconnectPolicy
from producers.staleness import StalenessMonitor
from producers.stock_source import STOCK_ROUTING
from producers.stock_source import StockMarketHours as MarketHours
from producers.subscription_manager import SubscriptionLimitError, SubscriptionManager
from schemas.events import GapReason, SubscriptionRequest
from schemas.timestamps import NS_PER_SECOND

S = NS_PER_SECOND

# --- ReconnectPolicy ------------------------------------------------------------------------------


def test_policy_given_failures_doubles_from_base_to_cap_then_stays_at_cap() -> None:
    """Test that the seeds' sequence holds: 5, 10, 20 ... capped at 300, and the cap after exhaustion."""
    policy = ReconnectPolicy(base=5, cap=300, jitter=0, max_attempts=10)
    delays = [policy.next_delay() for _ in range(12)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300, 300, 300]


def test_policy_given_success_restarts_at_base() -> None:
    """Test that a success resets the sequence and the exhausted flag."""
    policy = ReconnectPolicy(base=1, cap=8, jitter=0, max_attempts=3)
    for _ in range(4):
        policy.next_delay()
    assert policy.exhausted
    policy.record_success()
    assert (policy.exhausted, policy.attempts, policy.next_delay()) == (False, 0, 1)


def test_policy_given_small_cap_after_max_attempts_waits_the_cap() -> None:
    """Test that past max_attempts every delay is the cap even when doubling had not reached it."""
    policy = ReconnectPolicy(base=1, cap=1000, jitter=0, max_attempts=3)
    assert [policy.next_delay() for _ in range(5)] == [1, 2, 4, 1000, 1000]
    assert policy.exhausted


def test_policy_given_jitter_stays_within_the_band_and_never_above_cap() -> None:
    """Test that jitter only shortens a delay, by at most its fraction."""
    policy = ReconnectPolicy(base=5, cap=300, jitter=0.2, max_attempts=100, rng=random.Random(7))
    for attempt in range(1, 60):
        delay = policy.next_delay()
        nominal = policy.nominal_delay(attempt)
        assert 0.8 * nominal <= delay <= nominal <= 300


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": 10, "cap": 5}, {"jitter": 1.0}, {"max_attempts": 0}])
def test_policy_given_nonsense_settings_refuses_them(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]


# --- SubscriptionManager ----------------------------------------------------------------------


def test_subscriptions_given_two_sources_keep_symbol_until_both_release() -> None:
    """Test reference counting by source: the last release unsubscribes."""
    manager = SubscriptionManager(max_symbols=30)
    assert manager.want("aapl", "api").added == ("AAPL",)
    assert not manager.want("AAPL", "positions")
    assert not manager.release("AAPL", "api")
    assert manager.active == ("AAPL",)
    assert manager.release("AAPL", "positions").removed == ("AAPL",)
    assert manager.active == ()


def test_subscriptions_given_repeated_requests_are_idempotent_per_source() -> None:
    """Test that replaying the same request (topic read from the beginning) changes nothing."""
    manager = SubscriptionManager(max_symbols=30)
    manager.want("MSFT", "api")
    assert not manager.want("MSFT", "api")
    assert manager.release("MSFT", "api").removed == ("MSFT",)
    assert not manager.release("MSFT", "api")
    assert not manager.release("NEVER", "api")


def test_subscriptions_given_limit_reached_queues_and_promotes_on_release() -> None:
    """Test that symbols over the limit wait, in request order, and take freed slots."""
    manager = SubscriptionManager(max_symbols=2)
    manager.want("A", "config")
    manager.want("B", "api")
    with pytest.raises(SubscriptionLimitError, match=r"symbol limit reached \(2"):
        manager.want("C", "api")
    with pytest.raises(SubscriptionLimitError):
        manager.want("D", "api")
    assert (manager.active, manager.pending) == (("A", "B"), ("C", "D"))
    change = manager.release("A", "config")
    assert (change.added, change.removed) == (("C",), ("A",))
    assert manager.release("D", "api") == manager.release("D", "nobody")  # pending one leaves quietly
    assert (manager.active, manager.pending) == (("B", "C"), ())


def test_subscriptions_given_bad_symbol_raises_value_error() -> None:
    manager = SubscriptionManager(max_symbols=2)
    with pytest.raises(ValueError, match="invalid symbol"):
        manager.apply(SubscriptionRequest(symbol="no way", action="subscribe", source="api", requested_at="x"))


# --- StalenessMonitor -------------------------------------------------------------------------

T0 = 1_700_000_000 * S  # 2023-11-14 22:13:20 UTC: a Tuesday, 17:13 in New York


def monitor(mode: str = "always") -> StalenessMonitor:
    return StalenessMonitor(mute_after_s=10, quiet_after_s=5, market_hours=MarketHours(mode),
                            halts=STOCK_ROUTING.halts, resumes=STOCK_ROUTING.resumes)


def test_staleness_given_one_silent_symbol_while_others_flow_reports_it_quiet_not_mute() -> None:
    verdict = monitor().check(T0 + 20 * S, ["A", "B"], {"A": T0 + 19 * S, "B": T0 + 2 * S}, T0 + 19 * S, T0)
    assert (verdict.mute, verdict.quiet) == (False, ("B",))


def test_staleness_given_whole_socket_silent_past_mute_after_says_mute() -> None:
    verdict = monitor().check(T0 + 20 * S, ["A", "B"], {"A": T0 + 9 * S}, T0 + 9 * S, T0)
    assert verdict.mute and verdict.silent_for_s == pytest.approx(11)


def test_staleness_given_fresh_subscription_counts_silence_from_subscribe_time() -> None:
    verdict = monitor().check(T0 + 9 * S, ["A"], {}, 0, T0)
    assert (verdict.mute, verdict.quiet) == (False, ("A",))


def test_staleness_given_every_symbol_halted_is_never_mute() -> None:
    """Test that a halt explains silence; a resumption makes the symbol count again."""
    rules = monitor()
    rules.on_status("A", "H")
    assert not rules.check(T0 + 60 * S, ["A"], {}, T0, T0).mute
    rules.on_status("A", "T")
    assert rules.check(T0 + 60 * S, ["A"], {}, T0, T0).mute


def test_staleness_given_halted_symbol_is_not_quiet_and_others_still_judged() -> None:
    rules = monitor()
    rules.on_status("B", "P")  # volatility pause
    verdict = rules.check(T0 + 20 * S, ["A", "B"], {"A": T0 + 19 * S}, T0 + 19 * S, T0)
    assert (verdict.mute, verdict.quiet) == (False, ())


@pytest.mark.parametrize(("mode", "when", "open_"), [
    ("regular", datetime(2023, 11, 14, 14, 29, tzinfo=UTC), False),  # 09:29 New York
    ("regular", datetime(2023, 11, 14, 14, 30, tzinfo=UTC), True),
    ("regular", datetime(2023, 11, 14, 21, 0, tzinfo=UTC), False),  # 16:00
    ("extended", datetime(2023, 11, 14, 21, 0, tzinfo=UTC), True),
    ("extended", datetime(2023, 11, 15, 1, 0, tzinfo=UTC), False),  # 20:00
    ("extended", datetime(2023, 11, 18, 15, 0, tzinfo=UTC), False),  # Saturday
    ("always", datetime(2023, 11, 18, 15, 0, tzinfo=UTC), True),
    ("regular", datetime(2024, 7, 1, 13, 30, tzinfo=UTC), True),  # summer time: 09:30 EDT
])
def test_market_hours_given_time_says_open_in_new_york_sessions(mode: str, when: datetime, open_: bool) -> None:
    assert MarketHours(mode).is_open(when) is open_  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [["H"], None, 2, {"sc": "H"}])
def test_staleness_given_malformed_status_code_ignores_it(code: object) -> None:
    rules = monitor()
    rules.on_status("A", code)
    assert rules.halted == set()


def test_staleness_given_market_closed_nothing_is_stale() -> None:
    saturday = int(datetime(2023, 11, 18, 15, 0, tzinfo=UTC).timestamp()) * S
    verdict = monitor("extended").check(saturday, ["A"], {}, 0, saturday - 3600 * S)
    assert (verdict.mute, verdict.quiet) == (False, ())


# --- GapTracker -------------------------------------------------------------------------------


def ts(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


def test_gaps_given_drop_closes_each_symbol_at_its_first_message_after() -> None:
    """Test a reconnect incident: last before, first after per symbol, then complete once all came back."""
    tracker = GapTracker(settle_s=5)
    incident = tracker.lost(GapReason.RECONNECT, ["A", "B"], {"A": ts(T0 + 1), "B": ts(T0 + 2)}, T0 + 3)
    assert incident is not None
    assert tracker.lost(GapReason.RECONNECT, ["A", "B"], {}, T0 + 4) is None  # failed retries extend it
    tracker.resumed(T0 + 10 * S)
    tracker.observe("A", ts(T0 + 11 * S), T0 + 11 * S)
    assert tracker.take_complete(T0 + 12 * S) == []
    tracker.observe("B", ts(T0 + 12 * S), T0 + 12 * S)
    [done] = tracker.take_complete(T0 + 12 * S)
    events = {e.symbol: e for e in done.events()}
    assert events["A"].last_before == "2023-11-14T22:13:20.000000001Z"
    assert events["A"].first_after == "2023-11-14T22:13:31.000000000Z"
    assert events["B"].reason == "reconnect" and events["B"].symbols == ["A", "B"]
    assert done.window_ns("B", T0 + 99 * S) == (T0 + 2, T0 + 12 * S)
    assert not tracker.waiting


def test_gaps_given_quiet_symbol_closes_after_settle_without_first_after() -> None:
    tracker = GapTracker(settle_s=5)
    tracker.lost(GapReason.STALL, ["A", "Q"], {"A": ts(T0)}, T0)
    tracker.resumed(T0 + 10 * S)
    tracker.observe("A", ts(T0 + 11 * S), T0 + 11 * S)
    assert tracker.take_complete(T0 + 14 * S) == []
    [done] = tracker.take_complete(T0 + 15 * S)
    quiet = next(e for e in done.events() if e.symbol == "Q")
    assert (quiet.reason, quiet.last_before, quiet.first_after) == ("stall", None, None)
    assert done.window_ns("Q", T0 + 99 * S) == (T0, T0 + 10 * S)  # nothing missed once the stream was back
    assert not tracker.waiting


def test_gaps_given_overflow_opens_per_symbol_and_closes_at_next_queued_message() -> None:
    tracker = GapTracker(settle_s=5)
    tracker.dropped("A", ts(T0 + 5), T0 + 6)
    tracker.dropped("A", ts(T0 + 5), T0 + 7)  # still the same incident
    assert tracker.waiting and tracker.opened == 1
    tracker.observe("A", ts(T0 + 9 * S), T0 + 9 * S)
    [done] = tracker.take_complete(T0 + 9 * S)
    [event] = done.events()
    assert (event.reason, event.last_before, event.first_after) == (
        "overflow", "2023-11-14T22:13:20.000000005Z", "2023-11-14T22:13:29.000000000Z")


def test_gaps_given_second_drop_before_all_symbols_returned_finishes_the_first() -> None:
    tracker = GapTracker(settle_s=5)
    first = tracker.lost(GapReason.RECONNECT, ["A", "B"], {}, T0)
    tracker.resumed(T0 + S)
    tracker.observe("A", ts(T0 + 2 * S), T0 + 2 * S)
    second = tracker.lost(GapReason.RECONNECT, ["A", "B"], {"A": ts(T0 + 2 * S)}, T0 + 3 * S)
    assert second is not None and second is not first
    assert tracker.take_complete(T0 + 3 * S) == [first]


def test_gaps_given_unsubscribed_symbol_stops_waiting_for_it() -> None:
    tracker = GapTracker(settle_s=60)
    tracker.lost(GapReason.RECONNECT, ["A"], {}, T0)
    tracker.resumed(T0 + S)
    tracker.forget("A")
    assert not tracker.waiting
    assert len(tracker.take_complete(T0 + 2 * S)) == 1


@pytest.mark.parametrize(("stamp", "expected"), [
    (ts(T0 + 7), T0 + 7), (T0, T0), ("2023-11-14T22:13:20.5Z", T0 + S // 2),
    (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), T0), ("garbage", None), (None, None), (True, None),
])
def test_exchange_ns_given_any_timestamp_form_returns_ns(stamp: object, expected: int | None) -> None:
    assert exchange_ns(stamp) == expected
