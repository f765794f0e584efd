"""API rules without servers: error messages, request validation, lag arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from consumers.api.broker import total_lag
from consumers.api.errors import describe_validation_errors, one_line
from consumers.api.models import MAX_SYMBOLS_PER_REQUEST, PositionUpdate, SubscribeRequest
from consumers.api.realtime_pnl import ParseCache
from consumers.client import position_record
from schemas.events import Position, PriceSnapshot

T0 = "2026-11-20T15:00:00.000000000Z"


def price(bid: str, ask: str, timestamp: str) -> PriceSnapshot:
    b, a = Decimal(bid), Decimal(ask)
    return PriceSnapshot(symbol="AAPL", bid=b, ask=a, mid=(a + b) / 2, spread=a - b, spread_bps=Decimal(1),
                         bid_size=1, ask_size=1, timestamp=timestamp, exchange="V")


def test_one_line_given_multiline_error_squeezes_and_truncates() -> None:
    assert one_line("Connection refused\n  at host\tx") == "Connection refused at host x"
    assert len(one_line("x" * 500)) == 200


def test_describe_validation_errors_given_pydantic_errors_names_field_and_problem() -> None:
    errors = [
        {"loc": ("body", "symbols"), "msg": "Field required", "type": "missing"},
        {"loc": ("body", "qty"), "msg": "Value error, qty is not a decimal number: 'x'", "type": "value_error"},
        {"loc": ("query", "account"), "msg": "String too long", "type": "string_too_long"},
        {"loc": ("body", 7), "msg": "JSON decode error", "type": "json_invalid", "ctx": {"error": "Expecting value"}},
    ]
    assert describe_validation_errors(errors) == (
        "symbols: field required; qty: qty is not a decimal number: 'x'; account: String too long; "
        "request body is not valid JSON (Expecting value)")


def test_subscribe_request_given_mixed_case_duplicates_normalises_and_dedupes() -> None:
    assert SubscribeRequest(symbols=["aapl", " MSFT", "AAPL", "brk.b"]).symbols == ["AAPL", "MSFT", "BRK.B"]


@pytest.mark.parametrize(("symbols", "message"), [
    ([], "at least 1"), (["A"] * (MAX_SYMBOLS_PER_REQUEST + 1), "at most 100"), (["$$$"], "invalid symbol"),
    ([7], "string"),
])
def test_subscribe_request_given_bad_symbols_says_what_is_wrong(symbols: list[object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SubscribeRequest(symbols=symbols)  # type: ignore[arg-type]


def test_position_update_given_decimal_strings_keeps_them_exact() -> None:
    update = PositionUpdate(qty="-50.5", avg_entry_price="150.125")  # type: ignore[arg-type]
    assert (update.qty, update.avg_entry_price, update.account) == (Decimal("-50.5"), Decimal("150.125"), "default")


@pytest.mark.parametrize(("body", "message"), [
    ({"qty": "1e", "avg_entry_price": "1"}, "qty is not a decimal number"),
    ({"qty": "NaN", "avg_entry_price": "1"}, "qty must be finite"),
    ({"qty": "1", "avg_entry_price": "-0.01"}, "must not be negative"),
    ({"qty": "1"}, "avg_entry_price"),
    ({"qty": "1", "avg_entry_price": "1", "account": "a b"}, "invalid account"),
    ({"qty": "1", "avg_entry_price": "1", "price": "1"}, "Extra inputs are not permitted"),
])
def test_position_update_given_bad_body_says_what_is_wrong(body: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PositionUpdate(**body)  # type: ignore[arg-type]


def test_position_record_given_cli_arguments_validates_like_the_api() -> None:
    position = position_record("aapl", "-50", "150.10", "fund-1")
    assert (position.symbol, position.qty, position.avg_entry_price, position.account) == (
        "AAPL", Decimal(-50), Decimal("150.10"), "fund-1")
    with pytest.raises(ValueError, match="avg_entry_price is not a decimal"):
        position_record("AAPL", "1", "abc")


def test_total_lag_given_committed_and_end_offsets_sums_the_gaps() -> None:
    a, b, c = (TopicPartition("prices", p) for p in range(3))
    assert total_lag({a: 10, b: 5, c: 7}, {a: 15, b: 5, c: 3}) == 5  # c: never negative


def test_parse_cache_given_same_bytes_reuses_the_model_and_bounds_each_model_type() -> None:
    cache = ParseCache(max_entries=2)
    raw = [Position(symbol=f"S{i}", qty=Decimal(i), avg_entry_price=Decimal(1), updated_at=T0).to_json()
           for i in range(3)]
    first = cache.parse(Position, raw[0])
    assert cache.parse(Position, raw[0]) is first and first.qty == Decimal(0)
    cache.parse(Position, raw[1])
    cache.parse(Position, raw[2])  # full: starts over
    assert cache.parse(Position, raw[0]) is not first and cache.parse(Position, raw[0]) == first
    assert cache.parse(PriceSnapshot, price("1.00", "1.02", T0).to_json()).bid == Decimal("1.00")
