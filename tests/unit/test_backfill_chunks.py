"""GapReconciler repairs a gap a few symbols at a time: each chunk is read and published before the next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from producers.backfill import GapReconciler, as_streamed
from producers.gaps import GapIncident
from producers.raw_events import PIPELINE_RAW_TOPICS, KafkaRecord
from schemas.events import GapReason
from schemas.timestamps import NS_PER_SECOND, format_ns
from schemas.topics import QUOTES_RAW

T0 = 1_700_000_000 * NS_PER_SECOND


class History:
    """A REST history with one quote per symbol inside its window; ``failing`` symbols raise."""

    def __init__(self, log: list[tuple[str, list[str]]], failing: frozenset[str] = frozenset()) -> None:
        self.log, self.failing = log, failing

    def missed(self, windows: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
        self.log.append(("read", list(windows)))
        if self.failing & set(windows):
            raise ConnectionError("REST down")
        return [as_streamed("q", s, {"t": format_ns(lo + 1), "bp": 1.0, "ap": 1.1, "bs": 1, "as": 1})
                for s, (lo, _) in windows.items()]


class Publisher:
    def __init__(self, log: list[tuple[str, list[str]]]) -> None:
        self.log = log

    async def send_records(self, records: Sequence[KafkaRecord]) -> None:
        self.log.append(("sent", [r.key.decode() for r in records if r.topic == QUOTES_RAW.name]))


def incident(symbols: list[str]) -> GapIncident:
    return GapIncident(GapReason.RECONNECT, T0, dict.fromkeys(symbols, T0), resumed_ns=T0 + 60 * NS_PER_SECOND)


async def test_reconcile_given_25_symbols_reads_and_publishes_10_at_a_time() -> None:
    """Test that a 25-symbol gap is read in chunks of 10, 10 and 5, each published before the next read."""
    # Arrange
    log: list[tuple[str, list[str]]] = []
    symbols = [f"S{i:02d}" for i in range(25)]
    publisher, history = Publisher(log), History(log)
    reconciler = GapReconciler(publisher, history, PIPELINE_RAW_TOPICS, 3600.0,  # type: ignore[arg-type]
                               symbols_per_request=10)

    # Act
    await reconciler.reconcile(incident(symbols))

    # Assert
    assert log[0] == ("sent", [])  # the feed.gaps announcements
    assert log[1:] == [("read", symbols[:10]), ("sent", symbols[:10]), ("read", symbols[10:20]),
                       ("sent", symbols[10:20]), ("read", symbols[20:]), ("sent", symbols[20:])]
    assert (reconciler.backfilled, reconciler.failures, reconciler.gaps) == (25, 0, 25)


async def test_reconcile_given_one_chunk_failing_repairs_the_others_and_counts_the_failure() -> None:
    """Test that a REST failure for one chunk leaves that chunk unrepaired and repairs the rest."""
    # Arrange
    log: list[tuple[str, list[str]]] = []
    symbols = [f"S{i:02d}" for i in range(6)]
    history = History(log, failing=frozenset({"S02"}))
    reconciler = GapReconciler(Publisher(log), history, PIPELINE_RAW_TOPICS, 3600.0,  # type: ignore[arg-type]
                               symbols_per_request=2)

    # Act
    await reconciler.reconcile(incident(symbols))

    # Assert
    sent = [keys for what, keys in log[1:] if what == "sent"]
    assert sent == [["S00", "S01"], ["S04", "S05"]]
    assert (reconciler.backfilled, reconciler.failures) == (4, 1)
