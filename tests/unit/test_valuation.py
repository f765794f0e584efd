"""Valuation: mark policies, fallback to the close, P&L to the cent for longs and shorts."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.valuation import Mark, choose_mark, total_unrealized, unrealized_pnl, value_position
from schemas.events import LastTrade, Position, PositionPnL, PreviousClose, PriceSnapshot

PRICE = PriceSnapshot(symbol="AAPL", bid=Decimal("151.98"), ask=Decimal("152.02"), mid=Decimal("152.00"),
                      spread=Decimal("0.04"), spread_bps=Decimal("2.6316"), bid_size=1, ask_size=1,
                      timestamp="2026-11-20T15:00:00.000000000Z", exchange="V")
TRADE = LastTrade(symbol="AAPL", price=Decimal("152.10"), size=100, timestamp="2026-11-20T15:00:01.000000000Z")
CLOSE = PreviousClose(symbol="AAPL", close=Decimal("149.50"), timestamp="2026-11-19T05:00:00.000000000Z",
                      source="daily_bar")


def test_unrealized_pnl_given_seed_example_is_200() -> None:
    assert unrealized_pnl(Decimal(100), Decimal("150.00"), Decimal("152.00")) == Decimal("200.00")


def test_unrealized_pnl_given_short_gains_when_price_falls() -> None:
    assert unrealized_pnl(Decimal(-50), Decimal("150.00"), Decimal("149.255")) == Decimal("37.25")


def test_unrealized_pnl_given_half_cent_rounds_half_even() -> None:
    assert unrealized_pnl(Decimal(1), Decimal("0"), Decimal("0.125")) == Decimal("0.12")
    assert unrealized_pnl(Decimal(1), Decimal("0"), Decimal("0.135")) == Decimal("0.14")


@pytest.mark.parametrize(
    ("policy", "qty", "expected"),
    [("mid", 10, "152.00"), ("side", 10, "151.98"), ("side", -10, "152.02"), ("last", 10, "152.10")],
)
def test_choose_mark_given_policy_picks_that_price(policy: str, qty: int, expected: str) -> None:
    mark = choose_mark(policy, Decimal(qty), PRICE, TRADE, CLOSE)  # type: ignore[arg-type]
    assert mark is not None and mark.price == Decimal(expected) and mark.source == "real-time"


def test_choose_mark_given_no_live_price_falls_back_to_close() -> None:
    mark = choose_mark("mid", Decimal(10), None, TRADE, CLOSE)
    assert mark is not None and (mark.price, mark.source) == (Decimal("149.50"), "closing")
    assert choose_mark("last", Decimal(10), PRICE, None, CLOSE).source == "closing"  # type: ignore[union-attr]
    assert choose_mark("mid", Decimal(10), None, None, None) is None


def test_value_position_given_no_mark_reports_none_source_and_null_figures() -> None:
    position = Position(account="a", symbol="AAPL", qty=Decimal(5), avg_entry_price=Decimal(1), updated_at="t")
    valued = value_position(position, None, "now")
    assert (valued.mark_price, valued.unrealized_pnl, valued.price_source) == (None, None, "none")
    assert total_unrealized([valued]) == Decimal("0.00")


money = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, allow_infinity=False)


@given(account=st.text(min_size=1, max_size=12), qty=money, avg=money, mark=st.none() | money,
       source=st.sampled_from(["real-time", "closing"]), stamp=st.none() | st.just(PRICE.timestamp))
def test_position_valuation_to_json_given_any_figures_writes_position_pnl_bytes(
        account: str, qty: Decimal, avg: Decimal, mark: Decimal | None, source: str, stamp: str | None) -> None:
    """Test that the processor's lean valuation serialises exactly as the PositionPnL schema does."""
    # Arrange
    position = Position(account=account, symbol="BRK.B", qty=qty, avg_entry_price=avg, updated_at="t")
    # Act
    valued = value_position(position, None if mark is None else Mark(mark, source, stamp or ""), "now")  # type: ignore[arg-type]
    # Assert
    expected = PositionPnL(**{name: getattr(valued, name) for name in PositionPnL.model_fields}).to_json()
    assert valued.to_json() == expected
