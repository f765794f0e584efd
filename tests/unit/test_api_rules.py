"""API rules without servers: error messages, request validation, lag arithmetic, snapshot de-duplication."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError

from consumers.api.broker import total_lag
from consumers.api.errors import describe_validation_errors, one_line
from consumers.api.live_stream import Snapshot, SnapshotFilter
from consumers.api.models import MAX_SYMBOLS_PER_REQUEST, PositionUpdate, SubscribeRequest
from consumers.api.realtime_pnl import ParseCache
from consumers.client import position_record
from schemas.events import AccountPnL, PnLUpdated, Position, PositionPnL, PriceSnapshot, PriceUpdated

T0 = "2026-11-20T15:00:00.000000000Z"
T1 = "2026-11-20T15:00:01.000000000Z"
T2 = "2026-11-20T15:00:02.000000000Z"


def price(bid: str, ask: str, timestamp: str) -> PriceSnapshot:
    b, a = Decimal(bid), Decimal(ask)
    return PriceSnapshot(symbol="AAPL", bid=b, ask=a, mid=(a + b) / 2, spread=a - b, spread_bps=Decimal(1),
                         bid_size=1, ask_size=1, timestamp=timestamp, exchange="V")


def update_of(snap: PriceSnapshot) -> PriceUpdated:
    return PriceUpdated(symbol=snap.symbol, price=snap.mid, bid=snap.bid, ask=snap.ask, timestamp=snap.timestamp)


def pnl(symbol: str, pnl_value: str, at: str) -> PositionPnL:
    return PositionPnL(account="a", symbol=symbol, qty=Decimal(10), avg_entry_price=Decimal(1), mark_price=Decimal(2),
                       unrealized_pnl=Decimal(pnl_value), price_source="real-time", price_timestamp=at, updated_at=at)


def pnl_update(symbol: str, pnl_value: str, at: str, qty: str = "10") -> PnLUpdated:
    return PnLUpdated(account="a", symbol=symbol, qty=Decimal(qty), mark_price=Decimal(2),
                      unrealized_pnl=Decimal(pnl_value), price_source="real-time", total_unrealized=Decimal(0),
                      timestamp=at)


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


def test_snapshot_filter_given_price_updates_drops_those_the_snapshot_holds() -> None:
    held = price("1.00", "1.02", T1)
    keep = SnapshotFilter(Snapshot("a", {"AAPL": held}, {}, None))
    assert not keep.keep_price(update_of(price("0.90", "0.92", T0)))  # older
    assert not keep.keep_price(update_of(held))  # the snapshot's own update
    assert keep.keep_price(update_of(price("1.10", "1.12", T1)))  # same time, other price: news
    assert keep.keep_price(update_of(price("1.20", "1.22", T2)))


def test_snapshot_filter_given_symbol_absent_from_snapshot_keeps_its_updates() -> None:
    keep = SnapshotFilter(Snapshot("a", {}, {}, None))
    assert keep.keep_price(update_of(price("1.00", "1.02", T0)))
    assert keep.keep_pnl(pnl_update("AAPL", "5.00", T0))


def test_snapshot_filter_given_pnl_updates_drops_held_and_older_ones() -> None:
    total = AccountPnL(account="a", total_unrealized=Decimal("5.00"), positions=1, updated_at=T1)
    keep = SnapshotFilter(Snapshot("a", {}, {"AAPL": pnl("AAPL", "5.00", T1)}, total))
    assert not keep.keep_pnl(pnl_update("AAPL", "4.00", T0))
    assert not keep.keep_pnl(pnl_update("AAPL", "5.00", T1))
    assert keep.keep_pnl(pnl_update("AAPL", "6.00", T2))
    # A position closed before the snapshot: its close is no older than the total, so it is held already.
    assert not keep.keep_pnl(pnl_update("MSFT", "0.00", T1, qty="0"))
    assert keep.keep_pnl(pnl_update("MSFT", "1.00", T2))


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
