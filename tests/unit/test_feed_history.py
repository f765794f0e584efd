"""Unit tests of the feed's bounded history and REST paging (pure functions, no server)."""

from __future__ import annotations

import pytest

from alpaca_feed.history import History, aggregate
from alpaca_feed.rest import RestError, decode_page_token, encode_page_token, paginate


def _quote(t: int, bp: float = 1.0, symbol: str = "AAPL") -> dict[str, object]:
    return {"T": "q", "S": symbol, "bx": "V", "bp": bp, "bs": 1, "ax": "Q", "ap": bp + 0.01, "as": 1,
            "c": ["R"], "z": "C", "t": t}  # fmt: skip


def test_history_is_bounded_per_symbol_and_keeps_time_order() -> None:
    history = History(limit=5)
    history.record([_quote(t) for t in range(10)])
    assert [row[0] for row in history.between("quotes", "AAPL", 0, 100)] == [5, 6, 7, 8, 9]
    history.record([_quote(7, bp=2.0)])  # out of order: inserted in place, the oldest dropped
    assert [row[0] for row in history.between("quotes", "AAPL", 0, 100)] == [6, 7, 7, 8, 9]
    history.record([_quote(1)])  # older than everything kept: ignored
    assert history.latest("quotes", "AAPL")[0] == 9
    history.record([_quote("2024-01-01T00:00:00Z"), {"T": "q", "S": "X"}])  # not ns times: not kept
    assert history.symbols() == {"AAPL"}
    assert History(limit=0).latest("quotes", "AAPL") is None


def test_updated_bars_replace_the_minute_bar_they_amend() -> None:
    history = History()
    bar = {"T": "b", "S": "AAPL", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 100, "n": 2, "vw": 1.2, "t": 60}
    history.record([bar, {**bar, "t": 120}, {**bar, "T": "u", "c": 9.0, "t": 60}])
    assert [(row[0], row[4]) for row in history.between("bars", "AAPL", 0, 1000)] == [(60, 9.0), (120, 1.5)]


def test_aggregate_merges_minute_bars_into_buckets() -> None:
    rows = [
        (0, 1.0, 2.0, 0.5, 1.5, 100, 2, 1.0),
        (60, 1.5, 3.0, 1.0, 2.0, 300, 3, 2.0),
        (300, 2.0, 2.0, 2.0, 2.0, 10, 1, 2.0),
    ]
    assert aggregate(rows, 300) == [(0, 1.0, 3.0, 0.5, 2.0, 400, 5, 1.75), (300, 2.0, 2.0, 2.0, 2.0, 10, 1, 2.0)]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100])
def test_paging_visits_every_row_once_even_with_equal_times(limit: int, descending: bool) -> None:
    series = {s: [(t // 3, s, t) for t in range(10)] for s in ("B", "A", "C")}  # three rows per time
    seen = []
    token = None
    while True:
        page, token = paginate(series, limit, descending, token)
        assert sum(len(rows) for rows in page.values()) <= limit
        seen.extend(row for symbol in sorted(page) for row in page[symbol])
        if token is None:
            break
    expected = [row for s in ("A", "B", "C") for row in (series[s][::-1] if descending else series[s])]
    assert seen == expected


def test_page_tokens_round_trip_and_garbage_is_refused() -> None:
    assert decode_page_token(encode_page_token("AAPL", 12, 3)) == ("AAPL", 12, 3)
    for garbage in ("nope", encode_page_token("AAPL", 12, 3)[:-4], "WzEsMiwzXQ=="):
        with pytest.raises(RestError):
            decode_page_token(garbage)
