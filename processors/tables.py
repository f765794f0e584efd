"""The processor's Faust tables."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from processors.app import app, settings
from processors.write_behind import WriteBehindTable, more_than_price_changed
from schemas.topics import LATEST_PRICE_TABLE, MARKS_TABLE, POSITIONS_TABLE

# symbol bytes -> PriceEvent JSON dict of the newest accepted quote. The producer partitions changelog
# records by these raw key bytes exactly as the ingest partitions quotes.raw, so each changelog partition
# matches its source partition without needing a "current event" (a batch spans partitions).
latest_price_table = app.Table(
    LATEST_PRICE_TABLE,
    key_type=bytes,
    # No value_type (plain JSON): Faust 0.15 decodes changelog values of value_type=dict with dict.from_data,
    # which fails, so recovery after a rebalance or restart never restored the table and stalled the worker.
    partitions=settings.topic_partitions,
    use_partitioner=True,
)


class SymbolKeyedTable(MutableMapping[str, dict[str, Any]]):
    """A str-keyed view of a bytes-keyed table, so processing code deals in symbols."""

    def __init__(self, table: MutableMapping[bytes, dict[str, Any]]) -> None:
        self._table = table

    def __getitem__(self, symbol: str) -> dict[str, Any]:
        return self._table[symbol.encode()]

    def __setitem__(self, symbol: str, value: dict[str, Any]) -> None:
        self._table[symbol.encode()] = value

    def __delitem__(self, symbol: str) -> None:
        del self._table[symbol.encode()]

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self._table)

    def __len__(self) -> int:
        return len(self._table)


# Written behind: the newest value of each symbol reaches the changelog once per flush (see write_behind.py).
latest_price_by_symbol = WriteBehindTable(latest_price_table)

# symbol bytes -> {account: Position JSON}: the open positions in each symbol.
positions_table = app.Table(
    POSITIONS_TABLE, key_type=bytes, partitions=settings.topic_partitions, use_partitioner=True
)
# symbol bytes -> {"price": PriceSnapshot JSON, "trade": LastTrade JSON, "close": PreviousClose JSON}.
marks_table = app.Table(
    MARKS_TABLE, key_type=bytes, partitions=settings.topic_partitions, use_partitioner=True
)
positions_by_symbol = SymbolKeyedTable(positions_table)  # every position change is written at once
marks_by_symbol = WriteBehindTable(marks_table, write_through=more_than_price_changed)
WRITTEN_BEHIND = (latest_price_by_symbol, marks_by_symbol)


FLUSHES_PER_SECOND = 10


@app.timer(interval=1 / FLUSHES_PER_SECOND)
async def flush_written_behind_tables() -> None:
    """Hand the oldest pending latest prices and marks to their tables, within the changelog budget."""
    budget = max(1, 100 // FLUSHES_PER_SECOND)  # interim: the write-behind tables go with the price stage
    for table in WRITTEN_BEHIND:
        budget -= table.flush(budget)


@app.on_partitions_revoked.connect
async def _flush_before_revoke(app, revoked, **kwargs) -> None:  # type: ignore[no-untyped-def]
    # The worker taking over these partitions recovers the tables from their changelogs: give it the newest.
    for table in WRITTEN_BEHIND:
        table.flush()


@app.on_before_shutdown.connect
async def _flush_before_shutdown(app, **kwargs) -> None:  # type: ignore[no-untyped-def]
    for table in WRITTEN_BEHIND:
        table.flush()
