"""WriteBehindTable: a symbol-keyed view of a Faust table whose writes reach the changelog at most once per flush.

Every table write is a changelog record, and on Tansu each changelog record is its own Kafka batch, sent
one partition round trip after another (see the README): a few hundred records/s on a busy 2-core
machine. Written once per symbol per input batch, the latest-price and marks tables alone asked for two
records per quote. Here reads see every write at once (the view keeps pending values), and ``flush()``
hands the newest value of each written symbol to the table, oldest first and a few at a time: Faust
queues changelog records in a buffer of 100 and stops every agent while it holds more, so a flush of
all symbols at once stalled processing for a second at a time.

The price is paid only on a crash: a recovered latest price or mark can be a few seconds old,
which the symbol's next quote repairs (Redis never moves back in time: its Lua step refuses older
quotes). Writes for which ``write_through(old, new)`` is true go to the table at once (the marks table
uses it for closes and trades, which are rare and not repaired by the next quote).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

Json = dict[str, Any]


class WriteBehindTable(MutableMapping[str, Json]):
    """str-keyed view of a bytes-keyed table; ``flush()`` writes what is pending."""

    def __init__(self, table: MutableMapping[bytes, Json],
                 write_through: Callable[[Json | None, Json], bool] | None = None) -> None:
        self._table = table
        self._write_through = write_through
        self._pending: dict[str, Json] = {}

    def __getitem__(self, symbol: str) -> Json:
        if symbol in self._pending:
            return self._pending[symbol]
        return self._table[symbol.encode()]

    def __setitem__(self, symbol: str, value: Json) -> None:
        if self._write_through is not None and self._write_through(self.get(symbol), value):
            self._pending.pop(symbol, None)
            self._table[symbol.encode()] = value
        else:
            self._pending[symbol] = value

    def __delitem__(self, symbol: str) -> None:
        pending = self._pending.pop(symbol, None)
        if symbol.encode() in self._table:
            del self._table[symbol.encode()]
        elif pending is None:
            raise KeyError(symbol)

    def __iter__(self) -> Iterator[str]:
        yield from self._pending
        yield from (key.decode() for key in self._table if key.decode() not in self._pending)

    def __len__(self) -> int:
        return len(self._pending) + sum(1 for key in self._table if key.decode() not in self._pending)

    @property
    def pending(self) -> int:
        """Symbols written since the last flush."""
        return len(self._pending)

    def flush(self, limit: int | None = None) -> int:
        """Write pending values to the table (one changelog record each), oldest first, at most ``limit``."""
        symbols = list(self._pending)[:limit] if limit is not None else list(self._pending)
        for symbol in symbols:
            self._table[symbol.encode()] = self._pending.pop(symbol)
        return len(symbols)


def more_than_price_changed(old: Json | None, new: Json) -> bool:
    """``write_through`` of the marks table: True unless only its ``price`` entry differs."""
    if old is None:
        return True
    return any(old.get(key) != new.get(key) for key in (old.keys() | new.keys()) - {"price"})
