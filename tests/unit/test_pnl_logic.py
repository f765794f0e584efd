"""P&L join, conflation, subscription keeping and position parsing, without a broker."""

from decimal import Decimal
from typing import Any

import orjson
import pytest

from domain.pnl_conflation import PnLConflator
from domain.pnl_join import PnLJoiner
from domain.pnl_payloads import PnLPayloads
from domain.positions import validate_position
from domain.quotes import Rejection
from domain.records import SourceRecord
from domain.subscription_keeper import SubscriptionKeeper
from domain.valuation import PositionValuation
from schemas.events import Position, PriceEvent
from schemas.topics import DAILY_BARS_RAW, POSITIONS_BY_SYMBOL, PRICES, position_key


def price_record(symbol: str, bid: str, ask: str, ts: str) -> SourceRecord:
    mid = (Decimal(bid) + Decimal(ask)) / 2
    event = PriceEvent(symbol=symbol, bid=Decimal(bid), ask=Decimal(ask), mid=mid, spread=Decimal(ask) - Decimal(bid),
                       spread_bps=Decimal(0), bid_size=1, ask_size=1, timestamp=ts, exchange=None)
    return SourceRecord(symbol.encode(), event.to_json(), PRICES.name, 0, 0)


def position_record(account: str, symbol: str, qty: str, avg: str) -> SourceRecord:
    position = Position(account=account, symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(avg),
                        updated_at="2026-01-01T00:00:00.000000000Z")
    return SourceRecord(symbol.encode(), position.to_json(), POSITIONS_BY_SYMBOL.name, 0, 0)


def joiner(policy: str = "mid") -> tuple[PnLJoiner, dict[str, Any], dict[str, Any]]:
    positions: dict[str, Any] = {}
    marks: dict[str, Any] = {}
    return PnLJoiner(positions, marks, policy), positions, marks  # type: ignore[arg-type]


def test_apply_given_price_then_positions_revalues_each_account_in_the_symbol() -> None:
    join, positions, _ = joiner()
    join.apply([position_record("a", "AAPL", "100", "150"), position_record("b", "AAPL", "-10", "160")])
    result = join.apply([price_record("AAPL", "151.99", "152.01", "2026-01-01T00:00:01.000000000Z")])
    assert [(p.account, str(p.unrealized_pnl)) for p in result.valued] == [("a", "200.00"), ("b", "80.00")]
    assert set(positions["AAPL"]) == {"a", "b"}


@pytest.mark.parametrize(("policy", "bid", "ask", "revalued"), [
    ("mid", "151.98", "152.02", False),  # wider quote, same mid
    ("mid", "152.00", "152.02", True),
    ("side", "151.98", "152.02", True),  # same mid, but the bid a long is marked at moved
    ("side", "151.990", "152.010", False),  # same bid and ask, written differently
])
def test_apply_given_quote_that_keeps_the_mark_skips_revaluation(policy: str, bid: str, ask: str,
                                                                  revalued: bool) -> None:
    """Test that a new quote revalues positions only when it moves the mark they are valued at."""
    # Arrange
    join, _, marks = joiner(policy)
    join.apply([position_record("a", "AAPL", "100", "150"),
                price_record("AAPL", "151.99", "152.01", "2026-01-01T00:00:01.000000000Z")])
    # Act
    result = join.apply([price_record("AAPL", bid, ask, "2026-01-01T00:00:02.000000000Z")])
    # Assert
    assert bool(result.valued) is revalued
    assert marks["AAPL"]["price"]["timestamp"] == "2026-01-01T00:00:02.000000000Z"  # the mark itself is kept


def test_apply_given_older_price_ignores_it() -> None:
    join, _, marks = joiner()
    join.apply([price_record("AAPL", "10", "10", "2026-01-01T00:00:02.000000000Z")])
    join.apply([price_record("AAPL", "9", "9", "2026-01-01T00:00:01.000000000Z")])
    assert marks["AAPL"]["price"]["mid"] == "10"


def test_apply_given_open_and_close_reports_symbol_opened_then_emptied() -> None:
    join, positions, _ = joiner()
    opened = join.apply([position_record("a", "MSFT", "5", "1")])
    closed = join.apply([position_record("a", "MSFT", "0", "1")])
    assert opened.opened_symbols == {"MSFT"} and closed.emptied_symbols == {"MSFT"}
    assert positions["MSFT"] == {}


def test_apply_given_daily_bar_values_unpriced_position_at_close() -> None:
    join, _, _ = joiner()
    bar = {"T": "d", "S": "IBM", "o": 1, "h": 1, "l": 1, "c": 20.0, "v": 1, "n": 1, "vw": 1,
           "t": "2026-01-01T05:00:00.000000000Z"}
    join.apply([SourceRecord(b"IBM", orjson.dumps(bar), DAILY_BARS_RAW.name, 0, 0)])
    result = join.apply([position_record("a", "IBM", "10", "19.5")])
    assert (str(result.valued[0].unrealized_pnl), result.valued[0].price_source) == ("5.00", "closing")


def test_apply_given_garbage_mark_dead_letters_it() -> None:
    join, _, _ = joiner()
    result = join.apply([SourceRecord(b"X", b'{"T":"d","S":"X"}', DAILY_BARS_RAW.name, 3, 9)])
    assert result.rejected and result.rejected[0].value.source_offset == 9


def valued(pnl: str, qty: str = "10") -> PositionValuation:
    return PositionValuation(account="a", symbol="AAPL", qty=Decimal(qty), avg_entry_price=Decimal(100),
                             mark_price=Decimal(100), unrealized_pnl=Decimal(pnl), price_source="real-time",
                             price_timestamp="t", updated_at="t")


def test_conflator_given_thresholds_holds_small_moves_until_max_delay() -> None:
    conflator = PnLConflator(min_change=Decimal("1.00"), min_bps=Decimal(0), max_delay_s=1.0)
    assert conflator.offer([valued("0.00")], now=0.0) == [valued("0.00")]
    assert conflator.offer([valued("0.50")], now=0.1) == []
    assert conflator.due(now=0.5) == []
    assert conflator.due(now=1.2) == [valued("0.50")]
    assert conflator.offer([valued("1.60")], now=1.3) == [valued("1.60")]


def test_conflator_given_no_thresholds_emits_every_change_but_not_repeats() -> None:
    conflator = PnLConflator(Decimal(0), Decimal(0), 1.0)
    assert len(conflator.offer([valued("1.00"), valued("1.00"), valued("1.01")])) == 2


def test_conflator_given_emitted_revaluations_lost_emits_the_next_one_even_if_unchanged() -> None:
    conflator = PnLConflator(Decimal(0), Decimal(0), 1.0)
    conflator.offer([valued("1.00")])
    conflator.forget_emitted()
    assert conflator.offer([valued("1.00")]) == [valued("1.00")]


def test_conflator_given_bps_threshold_uses_position_cost() -> None:
    conflator = PnLConflator(Decimal(0), min_bps=Decimal(10), max_delay_s=60)  # 10 bps of $1,000 = $1
    conflator.offer([valued("0.00")], now=0)
    assert conflator.offer([valued("0.99")], now=0) == []
    assert conflator.offer([valued("1.00")], now=0) == [valued("1.00")]


def test_subscription_keeper_given_reopen_within_grace_never_unsubscribes() -> None:
    keeper = SubscriptionKeeper(grace_s=10)
    assert [(r.symbol, r.action) for r in keeper.update({"AAPL"}, set(), now=0)] == [("AAPL", "subscribe")]
    assert keeper.update(set(), {"AAPL"}, now=1) == []
    assert [(r.symbol, r.action) for r in keeper.update({"AAPL"}, set(), now=2)] == [("AAPL", "subscribe")]
    assert keeper.due(now=100) == []


def test_subscription_keeper_given_grace_over_unsubscribes_once() -> None:
    keeper = SubscriptionKeeper(grace_s=10)
    keeper.update(set(), {"MSFT"}, now=0)
    assert keeper.due(now=5) == []
    assert [(r.symbol, r.action, r.source) for r in keeper.due(now=10)] == [("MSFT", "unsubscribe", "positions")]
    assert keeper.due(now=20) == []


@pytest.mark.parametrize(
    ("key", "value", "detail"),
    [
        (b"a:AAPL", b'{"qty": "1e", "avg_entry_price": "1"}', "qty is not a decimal number"),
        (b"a:AAPL", b'{"qty": "1", "avg_entry_price": "-1"}', "must not be negative"),
        (b"a:AAPL", b'{"symbol": "MSFT", "qty": "1", "avg_entry_price": "1"}', "differs from value symbol"),
        (b"bad account!:AAPL", b'{"qty": "1", "avg_entry_price": "1"}', "invalid account"),
        (b"a:AAPL", b'{"avg_entry_price": "1"}', "missing field(s): qty"),
        (b"a:AAPL", b"[]", "expected a JSON object"),
        (b"", None, "tombstone with unusable key"),
    ],
)
def test_validate_position_given_bad_record_says_what_is_wrong(key: bytes, value: bytes | None, detail: str) -> None:
    outcome = validate_position(key, value)
    assert isinstance(outcome, Rejection) and detail in outcome.detail


def test_validate_position_given_numbers_and_default_account_accepts_them() -> None:
    outcome = validate_position(b"AAPL", b'{"qty": -5, "avg_entry_price": 150.25}')
    assert isinstance(outcome, Position)
    assert (outcome.account, outcome.qty, outcome.avg_entry_price) == ("default", Decimal(-5), Decimal("150.25"))



def test_pnl_payloads_given_repeated_changed_and_closed_positions_write_to_json_bytes_and_keys() -> None:
    """Test that cached heads and marks never leak into a revaluation they do not belong to."""
    # Arrange
    payloads = PnLPayloads()
    first = valued("10.00")
    same_position_new_mark = first._replace(mark_price=Decimal("101"), unrealized_pnl=Decimal("10.00"))
    changed_qty = first._replace(qty=Decimal("20"))  # new Decimal objects: the head is written again
    equal_but_other_text = first._replace(qty=Decimal("10.0"))  # equal to 10, but not the same text
    closed = first._replace(qty=Decimal(0), mark_price=None, unrealized_pnl=None, price_source="none")
    other_account = first._replace(account="b\"quoted")
    batches = [[first, same_position_new_mark], [changed_qty, equal_but_other_text], [closed, other_account, first]]
    # Act
    written = [payloads(batch) for batch in batches]
    # Assert
    assert [payload for _, payload in written] == [[pnl.to_json() for pnl in batch] for batch in batches]
    assert [keys for keys, _ in written] == [[position_key(pnl.account, pnl.symbol).encode() for pnl in batch]
                                            for batch in batches]
