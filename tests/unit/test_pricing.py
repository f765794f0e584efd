"""Decimal arithmetic of mid, spread and spread in basis points."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from domain.pricing import mid_price, price_of, spread_bps
from domain.quotes import ValidQuote
from schemas.events import PriceEvent
from schemas.timestamps import format_ns

prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4)


def test_mid_price_given_150_25_and_150_27_is_exactly_150_26() -> None:
    assert mid_price(Decimal("150.25"), Decimal("150.27")) == Decimal("150.26")
    assert str(mid_price(Decimal("150.25"), Decimal("150.27"))) == "150.26"


def test_mid_price_given_float_inputs_that_drift_stays_exact() -> None:
    # The float version gives 0.15000000000000002.
    assert mid_price(Decimal("0.1"), Decimal("0.2")) == Decimal("0.15")


def test_spread_bps_given_two_cent_spread_at_150_26_rounds_to_four_places() -> None:
    assert spread_bps(Decimal("150.25"), Decimal("150.27")) == Decimal("1.3310")


def price_event(quote: ValidQuote) -> PriceEvent:
    """The reference: the pydantic model built from the quote's figures (what price_of's fields must equal)."""
    return PriceEvent(
        symbol=quote.symbol, bid=quote.bid, ask=quote.ask, mid=mid_price(quote.bid, quote.ask),
        spread=quote.ask - quote.bid, spread_bps=spread_bps(quote.bid, quote.ask), bid_size=quote.bid_size,
        ask_size=quote.ask_size, timestamp=format_ns(quote.timestamp_ns), exchange=quote.exchange,
        received_at=format_ns(quote.received_ns) if quote.received_ns is not None else None,
    )


def test_price_of_given_quote_writes_exact_decimal_strings() -> None:
    quote = ValidQuote("AAPL", Decimal("150.25"), Decimal("150.27"), 3, 5, 1_700_000_000_123_456_789, None, "V")
    assert price_of(quote).fields == {
        "symbol": "AAPL", "bid": "150.25", "ask": "150.27", "mid": "150.26", "spread": "0.02",
        "spread_bps": "1.3310", "bid_size": 3, "ask_size": 5, "timestamp": format_ns(1_700_000_000_123_456_789),
        "exchange": "V", "received_at": None,
    }


def test_price_of_given_tiny_price_never_uses_exponent_notation() -> None:
    quote = ValidQuote("PENNY", Decimal("0.00001"), Decimal("0.00003"), 1, 1, 0, None, None)
    dumped = price_of(quote).fields
    assert dumped["bid"] == "0.00001" and dumped["mid"] == "0.00002"


@given(bid=prices, extra=prices)
def test_mid_price_given_any_uncrossed_market_lies_between_bid_and_ask(bid: Decimal, extra: Decimal) -> None:
    ask = bid + extra
    mid = mid_price(bid, ask)
    assert bid <= mid <= ask
    assert mid * 2 == bid + ask  # exact, no rounding


@given(bid=prices, extra=prices, sizes=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
       times=st.tuples(st.integers(0, 4 * 10**18), st.none() | st.integers(0, 4 * 10**18)),
       exchange=st.none() | st.sampled_from(["V", "Q"]))
def test_price_of_given_any_valid_quote_has_the_fields_price_event_dumps(
        bid: Decimal, extra: Decimal, sizes: tuple[int, int], times: tuple[int, int | None],
        exchange: str | None) -> None:
    """Test that the firehose's price (no pydantic model) writes exactly PriceEvent's JSON fields."""
    quote = ValidQuote("AAPL", bid, bid + extra, sizes[0], sizes[1], times[0], times[1], exchange)
    price, event = price_of(quote), price_event(quote)
    assert price.fields == event.model_dump(mode="json")
    assert list(price.fields) == list(event.model_dump(mode="json"))  # same order: the same JSON bytes
    assert (price.symbol, price.bid, price.ask, price.mid, price.timestamp, price.received_at) == (
        event.symbol, event.bid, event.ask, event.mid, event.timestamp, event.received_at)
