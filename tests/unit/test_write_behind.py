"""WriteBehindTable: reads see writes at once; the table (its changelog) gets the newest value per flush."""

from typing import Any

from processors.write_behind import WriteBehindTable, more_than_price_changed


class CountingTable(dict[bytes, dict[str, Any]]):
    """A table that counts writes (each would be a changelog record)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: bytes, value: dict[str, Any]) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_write_behind_given_many_writes_per_symbol_flushes_only_the_newest() -> None:
    """Test that reads see each write and the table gets one write per symbol per flush."""
    # Arrange
    table = CountingTable()
    view = WriteBehindTable(table)
    # Act
    for i in range(5):
        view["AAPL"] = {"n": i}
        view["MSFT"] = {"n": i}
    # Assert
    assert view["AAPL"] == {"n": 4} and table.writes == 0 and view.pending == 2
    assert view.flush() == 2
    assert table == {b"AAPL": {"n": 4}, b"MSFT": {"n": 4}} and table.writes == 2 and view.pending == 0


def test_write_behind_given_limit_flushes_oldest_first() -> None:
    """Test that a limited flush writes the symbols pending longest and keeps the rest."""
    table = CountingTable()
    view = WriteBehindTable(table)
    for symbol in ("A", "B", "C"):
        view[symbol] = {"n": 1}
    view["A"] = {"n": 2}  # rewritten: still pending since first
    assert view.flush(2) == 2 and set(table) == {b"A", b"B"} and table[b"A"] == {"n": 2}
    assert view.pending == 1 and view.flush(2) == 1


def test_write_behind_given_flushed_and_pending_keys_iterates_each_once() -> None:
    """Test that the view behaves as one mapping over pending and flushed values."""
    table = CountingTable()
    view = WriteBehindTable(table)
    view["A"] = {"n": 1}
    view.flush()
    view["A"] = {"n": 2}
    view["B"] = {"n": 1}
    assert sorted(view) == ["A", "B"] and len(view) == 2 and view.get("C") is None
    del view["A"]
    assert "A" not in view and b"A" not in table


def test_write_behind_given_write_through_predicate_writes_rare_changes_at_once() -> None:
    """Test that marks write through when more than the price changed, and defer price-only changes."""
    table = CountingTable()
    marks = WriteBehindTable(table, write_through=more_than_price_changed)
    marks["A"] = {"price": {"mid": "1"}}  # first value: through
    marks["A"] = {"price": {"mid": "2"}}  # price only: deferred
    assert table.writes == 1 and marks["A"]["price"]["mid"] == "2"
    marks["A"] = {"price": {"mid": "2"}, "close": {"close": "1"}}  # a close: through, pending dropped
    assert table.writes == 2 and marks.pending == 0 and table[b"A"]["close"] == {"close": "1"}
