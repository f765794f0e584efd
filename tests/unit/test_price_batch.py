"""price_batch: the latest price never moves back in time, and bad quotes become dead letters."""

from typing import Any

import orjson

from domain.price_batch import price_batch
from domain.quotes import QuoteValidator
from domain.records import SourceRecord
from schemas.timestamps import NS_PER_SECOND, format_ns

T0 = 1_700_000_000_000_000_000


def record(offset: int, symbol: str, bid: float, ask: float, t_ns: int) -> SourceRecord:
    value = {"T": "q", "S": symbol, "bp": bid, "bs": 1, "ap": ask, "as": 1, "t": format_ns(t_ns),
             "received_at": format_ns(t_ns)}
    return SourceRecord(symbol.encode(), orjson.dumps(value), "quotes.raw", 0, offset)


def test_price_batch_given_older_quote_rejects_it_as_out_of_order() -> None:
    latest: dict[str, dict[str, Any]] = {}
    result = price_batch(
        [record(0, "AAPL", 10.0, 10.02, T0), record(1, "AAPL", 9.0, 9.02, T0 - NS_PER_SECOND)],
        latest, QuoteValidator(),
    )
    assert [str(p.mid) for p in result.prices] == ["10.01"]
    assert [r.value.reason.value for r in result.rejected] == ["out_of_order"]
    assert result.rejected[0].value.source_offset == 1 and result.rejected[0].key == b"AAPL"
    assert latest["AAPL"]["mid"] == "10.01"


def test_price_batch_given_stored_newer_price_rejects_older_quote_across_batches() -> None:
    latest: dict[str, dict[str, Any]] = {}
    price_batch([record(0, "AAPL", 10.0, 10.02, T0)], latest, QuoteValidator())
    result = price_batch([record(1, "AAPL", 11.0, 11.02, T0 - 1)], latest, QuoteValidator())
    assert result.prices == [] and result.rejected[0].value.reason.value == "out_of_order"
    assert latest["AAPL"]["bid"] == "10.0"


def test_price_batch_given_several_symbols_writes_table_once_per_symbol() -> None:
    writes: list[str] = []

    class CountingTable(dict[str, dict[str, Any]]):
        def __setitem__(self, key: str, value: dict[str, Any]) -> None:
            writes.append(key)
            super().__setitem__(key, value)

    table = CountingTable()
    records = [record(i, sym, 10.0 + i, 10.5 + i, T0 + i) for i, sym in enumerate(["A", "B", "A", "A", "B"])]
    result = price_batch(records, table, QuoteValidator())
    assert len(result.prices) == 5
    assert sorted(writes) == ["A", "B"]
    assert table["A"]["bid"] == "13.0"
