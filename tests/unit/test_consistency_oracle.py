"""The oracle's own rules: newest valid quote wins, ties go to the later record, P&L at the mid to the cent."""

from __future__ import annotations

from decimal import Decimal

import orjson

from consumers.consistency import Expected, compare, expected_pnl, expected_prices
from schemas.timestamps import format_ns

T0 = 1_763_700_000_000_000_000


def q(bid: float, ask: float, t: int, symbol: str = "AAPL", bx: str = "V") -> bytes:
    return orjson.dumps({"T": "q", "S": symbol, "bp": bid, "bs": 1, "ap": ask, "as": 2, "bx": bx,
                         "t": format_ns(t), "received_at": format_ns(t + 1000)})


def test_expected_prices_given_late_crossed_and_tied_quotes_keeps_newest_valid_later_on_tie() -> None:
    values = [q(10, 10.02, T0 + 2), q(9, 9.02, T0 + 1), q(11, 10.5, T0 + 3), b"not json", None,
              q(10.1, 10.12, T0 + 2, bx="Q")]
    prices, read, valid = expected_prices(values, 60)
    assert (read, valid) == (5, 3)
    assert prices["AAPL"]["mid"] == Decimal("10.11") and prices["AAPL"]["exchange"] == "Q"
    assert prices["AAPL"]["spread_bps"] == Decimal("19.7824")


def test_expected_pnl_given_reopened_closed_and_unpriced_positions_values_last_record_of_each_key() -> None:
    prices, _, _ = expected_prices([q(150.25, 150.27, T0)], 60)
    pos = [(b"a:AAPL", orjson.dumps({"qty": "10", "avg_entry_price": "100"})),
           (b"a:AAPL", orjson.dumps({"qty": "-3", "avg_entry_price": "150.333"})),
           (b"a:MSFT", orjson.dumps({"qty": "5", "avg_entry_price": "1"})),
           (b"b:AAPL", orjson.dumps({"qty": "5", "avg_entry_price": "1"})), (b"b:AAPL", None)]
    expected = Expected(prices=prices)
    expected_pnl(pos, prices, expected)
    assert expected.pnl == {"a": {"AAPL": {"qty": Decimal(-3), "avg_entry_price": Decimal("150.333"),
                                           "mark_price": Decimal("150.26"), "unrealized_pnl": Decimal("0.22"),
                                           "price_timestamp": format_ns(T0)}}}
    assert (expected.positions_read, expected.positions_unpriced, expected.unpriced_accounts) == (2, 1, {"a"})


def test_compare_given_decimals_in_other_forms_matches_by_value_and_reports_absent() -> None:
    assert compare("redis", "x", {"mid": Decimal("1.50")}, {"mid": "1.5"}, ["mid"]) == ([], 1)
    assert [str(m) for m in compare("redis", "x", {"mid": Decimal("1.5")}, {"mid": "x"}, ["mid"])[0]] == [
        "redis x mid: expected 1.5, got x"]
    assert compare("api", "x", {"mid": Decimal(1)}, None, ["mid"])[0][0].actual == "absent"
