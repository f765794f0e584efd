"""QuoteValidator: every rule, and that no input makes it raise."""

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.quotes import QuoteValidator, Rejection, ValidQuote
from schemas.events import RejectReason
from schemas.timestamps import NS_PER_SECOND, format_ns

T0 = 1_700_000_000_000_000_000


def quote(**overrides: Any) -> dict[str, Any]:
    base = {"T": "q", "S": "AAPL", "bx": "V", "bp": 150.25, "bs": 3, "ax": "Q", "ap": 150.27, "as": 5,
            "c": ["R"], "z": "C", "t": format_ns(T0), "received_at": format_ns(T0 + 2_000_000)}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None or k not in overrides}


def rejection(value: Any) -> Rejection:
    outcome = QuoteValidator().validate(value)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def test_validate_given_good_quote_returns_exact_decimals_and_nanoseconds() -> None:
    outcome = QuoteValidator().validate(orjson.dumps(quote()))
    assert outcome == ValidQuote("AAPL", Decimal("150.25"), Decimal("150.27"), 3, 5, T0, T0 + 2_000_000, "V")


def test_validate_given_locked_market_accepts_it() -> None:
    assert isinstance(QuoteValidator().validate(quote(ap=150.25)), ValidQuote)


@pytest.mark.parametrize(
    ("overrides", "reason", "detail"),
    [
        ({"ap": 150.20}, RejectReason.CROSSED_MARKET, "crossed market: ask 150.2 < bid 150.25"),
        ({"bp": -1.0}, RejectReason.NEGATIVE_PRICE, "negative price"),
        ({"bp": 0.0}, RejectReason.ZERO_PRICE, "one-sided market"),
        ({"as": -5}, RejectReason.NEGATIVE_SIZE, "negative size"),
        ({"bp": "150.25"}, RejectReason.INVALID_FIELD, "bp must be a number"),
        ({"bs": 1.5}, RejectReason.INVALID_FIELD, "bs must be an integer"),
        ({"bp": True}, RejectReason.INVALID_FIELD, "bp must be a number"),
        ({"S": "not a symbol!"}, RejectReason.INVALID_FIELD, "invalid symbol"),
        ({"t": "yesterday"}, RejectReason.INVALID_FIELD, "not an RFC 3339 timestamp"),
        ({"t": format_ns(T0 - 120 * NS_PER_SECOND)}, RejectReason.STALE, "from receive time"),
        ({"t": format_ns(T0 + 120 * NS_PER_SECOND)}, RejectReason.STALE, "from receive time"),
    ],
)
def test_validate_given_bad_field_rejects_with_reason(overrides: dict[str, Any], reason: RejectReason,
                                                      detail: str) -> None:
    outcome = rejection(quote(**overrides))
    assert outcome.reason is reason
    assert detail in outcome.detail
    assert outcome.payload == quote(**overrides)


@pytest.mark.parametrize("field", ["S", "t", "bp", "bs", "ap", "as"])
def test_validate_given_missing_field_names_it(field: str) -> None:
    value = quote()
    del value[field]
    outcome = rejection(value)
    assert outcome.reason is RejectReason.MISSING_FIELD
    assert field in outcome.detail


@pytest.mark.parametrize("raw", [b"not json", b"", b"\xff\xfe", b"[1,2]", b"42", b'{"bp": NaN}'])
def test_validate_given_non_object_rejects_as_malformed(raw: bytes) -> None:
    assert rejection(raw).reason is RejectReason.MALFORMED


def test_validate_given_no_receive_time_skips_staleness() -> None:
    assert isinstance(QuoteValidator().validate(quote(received_at=None)), ValidQuote)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8,
)


@given(overrides=st.dictionaries(st.sampled_from(["S", "t", "bp", "bs", "ap", "as", "bx", "received_at"]),
                                 json_values, max_size=4))
def test_validate_given_any_field_values_never_raises(overrides: dict[str, Any]) -> None:
    outcome = QuoteValidator().validate(quote(**overrides))
    assert isinstance(outcome, ValidQuote | Rejection)
    if isinstance(outcome, ValidQuote):
        assert 0 < outcome.bid <= outcome.ask


@given(raw=st.binary(max_size=64))
def test_validate_given_random_bytes_never_raises(raw: bytes) -> None:
    assert isinstance(QuoteValidator().validate(raw), ValidQuote | Rejection)
