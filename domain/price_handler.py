"""PriceHandler: the price stage's work as a function of a batch (records in -> prices, dead letters, marks).

The live stage (``processors/price_stage.py``) and ``tickwire replay`` drive the same handler: it does no
I/O. Per batch it validates and prices every quote (``price_batch``), keeps each symbol's latest price
monotone, and turns the batch's newest price per symbol into a **mark** for the P&L processor when it
moves the price positions are valued at (the mid; the bid or ask under the ``side`` policy; the last trade
under ``last``), at most once per ``mark_interval_s`` per symbol (held marks go out when due, and all of
them before each offset commit).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.mark_cadence import MarkCadence
from domain.marks import last_trade
from domain.price_batch import price_batch
from domain.price_payloads import PricePayloads, price_payloads
from domain.pricing import Price
from domain.quotes import QuoteValidator, Rejection
from domain.records import DeadLetter, SourceRecord, dead_letter
from domain.valuation import MarkPolicy
from schemas.events import RejectReason
from schemas.topics import TRADES_RAW

# A record of the marks topic: (symbol key, PriceEvent or LastTrade JSON). Not a valuation's
# :class:`domain.valuation.Mark` (the price a position is valued at), which the P&L stage makes of it.
MarkRecord = tuple[bytes, bytes]


@dataclass(slots=True)
class PriceBatch:
    """What one batch produced, in input order (``payloads[i]`` is ``prices[i]`` serialised for its outputs)."""

    prices: list[Price] = field(default_factory=list)
    payloads: list[PricePayloads] = field(default_factory=list)
    appended_ns: list[int] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    marks: list[MarkRecord] = field(default_factory=list)


class PriceHandler:
    """Validates, prices and marks batches of ``quotes.raw`` (and ``trades.raw`` for the ``last`` policy)."""

    def __init__(self, validator: QuoteValidator, policy: MarkPolicy, mark_interval_s: float,
                 latest: MutableMapping[str, dict[str, Any]] | None = None) -> None:
        self.validator = validator
        self.policy = policy
        # symbol -> its latest price's JSON fields (the price stage's changelog table; a dict in replays)
        self.latest: MutableMapping[str, dict[str, Any]] = latest if latest is not None else {}
        self.cadence: MarkCadence[MarkRecord] = MarkCadence(mark_interval_s)
        self.partition_of: dict[str, int] = {}  # symbol -> its partition (keys are partitioned like the input)
        self.newest_marks: dict[str, MarkRecord] = {}  # each symbol's newest mark, passed or held (sent again if lost)
        self._marked: dict[str, tuple[object, str]] = {}  # symbol -> (mark price(s), timestamp) last marked

    def handle(self, records: Sequence[SourceRecord], now: float) -> PriceBatch:
        """Process one batch; ``now`` (monotonic seconds) paces the marks."""
        quotes = [r for r in records if r.topic != TRADES_RAW.name]
        result = price_batch(quotes, self.latest, self.validator)
        batch = PriceBatch(prices=result.prices, appended_ns=result.appended_ns, rejected=result.rejected)
        newest: dict[str, MarkRecord] = {}
        for price in result.prices:
            payloads = price_payloads(price.fields)
            batch.payloads.append(payloads)
            if self.policy != "last" and self._moves_mark(price):
                newest[price.symbol] = (price.symbol.encode(), payloads.event)
        for record in quotes:
            if record.key:
                self.partition_of.setdefault(record.key.decode("utf-8", "replace"), record.partition)
        if self.policy == "last":
            self._trades([r for r in records if r.topic == TRADES_RAW.name], newest, batch)
        self.newest_marks.update(newest)
        batch.marks = self.cadence.offer(newest, now)
        return batch

    def due_marks(self, now: float, *, all_held: bool = False) -> list[MarkRecord]:
        """Held marks whose interval passed (every held mark with ``all_held``, as before a commit)."""
        return self.cadence.drain(now) if all_held else self.cadence.due(now)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the state of symbols in partitions this worker gave up."""
        gone = {symbol for symbol, partition in self.partition_of.items() if partition in partitions}
        self.cadence.forget(gone)
        for symbol in gone:
            self.latest.pop(symbol, None)
            self.partition_of.pop(symbol, None)
            self._marked.pop(symbol, None)
            self.newest_marks.pop(symbol, None)

    def _moves_mark(self, price: Price) -> bool:
        key = price.mid if self.policy == "mid" else (price.bid, price.ask)
        marked = self._marked.get(price.symbol)
        if marked is not None and marked[0] == key:
            return False
        self._marked[price.symbol] = (key, price.timestamp)
        return True

    def _trades(self, records: list[SourceRecord], newest: dict[str, MarkRecord], batch: PriceBatch) -> None:
        for record in records:
            try:
                trade = last_trade(orjson.loads(record.value))
            except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                batch.rejected.append(dead_letter(record, Rejection(
                    RejectReason.INVALID_FIELD, f"unusable trade: {exc}", None, _decoded(record.value))))
                continue
            marked = self._marked.get(trade.symbol)
            if marked is not None and marked[1] >= trade.timestamp:
                continue  # not newer than the last trade marked
            self._marked[trade.symbol] = (trade.price, trade.timestamp)
            self.partition_of.setdefault(trade.symbol, record.partition)
            newest[trade.symbol] = (trade.symbol.encode(), trade.to_json())


def _decoded(value: bytes) -> object:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "replace")


def newer_price(restored: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether a restored latest price replaces the one held: it is a price, and not older (the table's rule)."""
    stamp = restored.get("timestamp")
    if not isinstance(restored.get("symbol"), str) or not isinstance(stamp, str):
        return False
    return current is None or current["timestamp"] < stamp
