"""MarkCadence: at most one mark per symbol per interval, newest wins, nothing held is lost."""

from __future__ import annotations

from domain.mark_cadence import MarkCadence
from domain.records import SourceRecord


def mark(symbol: str, n: int) -> SourceRecord:
    return SourceRecord(symbol.encode(), f'{{"n":{n}}}'.encode(), "prices", -1, -1)


def test_first_mark_of_a_symbol_passes_at_once() -> None:
    cadence = MarkCadence(0.05)
    assert cadence.offer({"AAPL": mark("AAPL", 1), "MSFT": mark("MSFT", 1)}, now=10.0) == [
        mark("AAPL", 1), mark("MSFT", 1)]
    assert cadence.held == 0


def test_marks_within_the_interval_are_held_and_the_newest_is_released_when_due() -> None:
    cadence = MarkCadence(0.05)
    cadence.offer({"AAPL": mark("AAPL", 1)}, now=10.0)
    assert cadence.offer({"AAPL": mark("AAPL", 2)}, now=10.01) == []
    assert cadence.offer({"AAPL": mark("AAPL", 3)}, now=10.02) == []
    assert cadence.due(now=10.049) == []
    assert cadence.due(now=10.05) == [mark("AAPL", 3)]
    assert cadence.held == 0
    # The release counts as the symbol's last pass: the next mark waits for the interval again.
    assert cadence.offer({"AAPL": mark("AAPL", 4)}, now=10.06) == []


def test_a_slow_symbol_is_never_delayed() -> None:
    cadence = MarkCadence(0.05)
    for step in range(5):
        assert cadence.offer({"AAPL": mark("AAPL", step)}, now=10.0 + step * 0.1) == [mark("AAPL", step)]


def test_drain_releases_every_held_mark() -> None:
    cadence = MarkCadence(0.05)
    cadence.offer({"AAPL": mark("AAPL", 1), "MSFT": mark("MSFT", 1)}, now=10.0)
    cadence.offer({"AAPL": mark("AAPL", 2), "MSFT": mark("MSFT", 2)}, now=10.01)
    assert cadence.drain(now=10.02) == [mark("AAPL", 2), mark("MSFT", 2)]
    assert cadence.held == 0 and cadence.due(now=20.0) == []


def test_zero_interval_passes_everything() -> None:
    cadence = MarkCadence(0.0)
    assert cadence.offer({"AAPL": mark("AAPL", 1)}, now=10.0) == [mark("AAPL", 1)]
    assert cadence.offer({"AAPL": mark("AAPL", 2)}, now=10.0) == [mark("AAPL", 2)]
