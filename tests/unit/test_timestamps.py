"""Nanosecond timestamps survive text round trips exactly."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.timestamps import format_ns, format_ns_trimmed, parse_ns

nanos = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)  # up to 2100


@given(ns=nanos)
def test_format_ns_given_any_time_round_trips_exactly(ns: int) -> None:
    assert parse_ns(format_ns(ns)) == ns
    assert parse_ns(format_ns_trimmed(ns)) == ns


@given(a=nanos, b=nanos)
def test_format_ns_given_two_times_text_order_is_time_order(a: int, b: int) -> None:
    assert (format_ns(a) < format_ns(b)) == (a < b)


def test_format_ns_given_alpaca_example_keeps_nine_digits() -> None:
    assert format_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert format_ns_trimmed(1_700_000_000_100_000_000) == "2023-11-14T22:13:20.1Z"
    assert format_ns_trimmed(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_parse_ns_given_offset_converts_to_utc() -> None:
    assert parse_ns("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000


@pytest.mark.parametrize("text", ["", "2023-11-14", "2023-11-14T22:13:20.1234567891Z", "noon", "2023-11-14T22:13:20"])
def test_parse_ns_given_non_rfc3339_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 timestamp"):
        parse_ns(text)
