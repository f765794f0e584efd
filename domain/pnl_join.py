"""PnLJoiner: joins marks (prices, trades) and closes with positions, per symbol: records -> revalued positions.

Either side fires: a new mark revalues every position in that symbol, a position change revalues that
position. State lives in two symbol-keyed mappings, held by the P&L stage for the partitions it owns
(its inputs are co-partitioned by symbol): ``positions_by_symbol`` (symbol -> {account: Position JSON})
and ``marks_by_symbol`` (symbol -> {"price": PriceSnapshot JSON, "trade": LastTrade JSON, "close":
PreviousClose JSON}).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.marks import previous_close
from domain.positions import validate_position
from domain.quotes import Rejection
from domain.records import DeadLetter, SourceRecord, dead_letter
from domain.valuation import Mark, MarkPolicy, PositionValuation, QuoteMark, choose_mark, quote_mark, value_position
from schemas.events import LastTrade, Position, PreviousClose, RejectReason
from schemas.timestamps import format_ns, now_ns
from schemas.topics import DAILY_BARS_RAW, POSITIONS_BY_SYMBOL

Json = dict[str, Any]


@dataclass(slots=True)
class PnLBatchResult:
    """What a batch changed, in input order."""

    valued: list[PositionValuation] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)  # changed positions (qty 0 = closed)
    trades: list[LastTrade] = field(default_factory=list)
    closes: list[PreviousClose] = field(default_factory=list)
    opened_symbols: set[str] = field(default_factory=set)  # first open position in the symbol
    emptied_symbols: set[str] = field(default_factory=set)  # last position in the symbol closed
    rejected: list[DeadLetter] = field(default_factory=list)


class PnLJoiner:
    """Applies records to the position and mark tables and values what they affect."""

    def __init__(
        self,
        positions_by_symbol: MutableMapping[str, Json],
        marks_by_symbol: MutableMapping[str, Json],
        policy: MarkPolicy,
    ) -> None:
        self.positions_by_symbol = positions_by_symbol
        self.marks_by_symbol = marks_by_symbol
        self.policy = policy
        # (symbol, account) -> (the table's dict, its Position): table values are replaced, never mutated.
        self._parsed_positions: dict[tuple[str, str], tuple[Json, Position]] = {}
        # symbol -> (the table's book, its Positions): a mark revalues the whole book, one lookup per mark.
        self._parsed_books: dict[str, tuple[Json, list[Position]]] = {}
        self._parsed_marks: dict[str, tuple[Json, ParsedMarks]] = {}  # symbol -> (the table's entry, as models)

    def apply(self, records: Iterable[SourceRecord]) -> PnLBatchResult:
        """Apply a batch; tables are written once per symbol at the end (each write is a changelog record)."""
        result = PnLBatchResult()
        positions: dict[str, Json] = {}
        marks: dict[str, Json] = {}
        now = _Now()
        for record in records:
            if record.topic == POSITIONS_BY_SYMBOL.name:
                self._apply_position(record, positions, marks, result, now)
            else:
                symbol = self._apply_mark(record, marks, result)
                if symbol is not None:
                    self._revalue_symbol(symbol, positions, marks, result, now)
        for symbol, value in positions.items():
            self.positions_by_symbol[symbol] = value
        for symbol, value in marks.items():
            self.marks_by_symbol[symbol] = value
        return result

    def value_all(self, symbol: str) -> list[PositionValuation]:
        """Current valuation of every position in ``symbol`` (used by timers and tools)."""
        result = PnLBatchResult()
        self._revalue_symbol(symbol, {}, {}, result, _Now())
        return result.valued

    # --- positions -------------------------------------------------------------------------------

    def _apply_position(self, record: SourceRecord, positions: dict[str, Json], marks: dict[str, Json],
                        result: PnLBatchResult, now: _Now) -> None:
        try:
            position = Position.model_validate_json(record.value)
        except ValueError:
            # positions.by_symbol is written by rekey_positions; anything else there is a bug upstream.
            outcome = validate_position(record.key, record.value)
            if isinstance(outcome, Rejection):
                result.rejected.append(dead_letter(record, outcome))
                return
            position = outcome
        book = dict(self._positions(position.symbol, positions))
        was_open = bool(book)
        if position.qty == 0:
            book.pop(position.account, None)
        else:
            book[position.account] = position.model_dump(mode="json")
        positions[position.symbol] = book
        result.positions.append(position)
        if book and not was_open:
            result.opened_symbols.add(position.symbol)
        if was_open and not book:
            result.emptied_symbols.add(position.symbol)
        result.valued.append(self._value(position, self._marks(position.symbol, marks), now))

    # --- marks -----------------------------------------------------------------------------------

    def _apply_mark(self, record: SourceRecord, marks: dict[str, Json], result: PnLBatchResult) -> str | None:
        """Update the symbol's marks; returns the symbol if its mark under the policy may have changed."""
        try:
            if record.topic == DAILY_BARS_RAW.name:
                close = previous_close(orjson.loads(record.value))
                entry = dict(self._marks(close.symbol, marks))
                entry["close"] = close.model_dump(mode="json")
                marks[close.symbol] = entry
                result.closes.append(close)
                # A close only marks positions that have no live price.
                return close.symbol
            raw = orjson.loads(record.value)  # a mark: the price stage's PriceEvent, or a LastTrade
            if not isinstance(raw, dict):
                raise TypeError(f"a mark must be a JSON object, got {type(raw).__name__}")
            if "bid" in raw:
                # The price stage's own PriceEvent: trusted, read without a model (quote_mark still refuses a
                # record that is not one, and it goes to the dead letters below).
                price = quote_mark(raw)
                before = self._marks(price.symbol, marks)
                stored = before.get("price")
                if stored is not None and stored["timestamp"] > price.timestamp:
                    return None  # marks only ever carry newer quotes per symbol; a replay may not
                # The JSON as it came (the price stage writes canonical fields), less received_at.
                raw.pop("received_at", None)
                entry = {**before, "price": raw}
                marks[price.symbol] = entry
                previous = self._parsed(price.symbol, before)
                self._parsed_marks[price.symbol] = (entry, (price, *previous[1:]))  # no need to parse it back
                # Same mark, same P&L (the conflator would drop every revaluation): skip the work.
                return price.symbol if self.policy != "last" and _mark_moved(self.policy, previous[0], price) else None
            trade = LastTrade.model_validate(raw)
            entry = dict(self._marks(trade.symbol, marks))
            stored = entry.get("trade")
            if stored is not None and stored["timestamp"] > trade.timestamp:
                return None
            entry["trade"] = trade.model_dump(mode="json")
            marks[trade.symbol] = entry
            result.trades.append(trade)
            return trade.symbol if self.policy == "last" else None
        except (ValueError, KeyError, TypeError) as exc:  # orjson's and pydantic's errors are ValueErrors
            payload = _decode_or_text(record.value)
            result.rejected.append(dead_letter(record, Rejection(RejectReason.INVALID_FIELD, str(exc), None, payload)))
        return None

    # --- valuation -------------------------------------------------------------------------------

    def _revalue_symbol(self, symbol: str, positions: dict[str, Json], marks: dict[str, Json],
                        result: PnLBatchResult, now: _Now) -> None:
        parsed = self._parsed(symbol, self._marks(symbol, marks))  # once per symbol, not once per position
        chosen: dict[bool, Mark | None] = {}  # the mark depends on the position only through long/short
        valued = result.valued
        for position in self._book(symbol, positions):
            long = position.qty > 0
            if long not in chosen:
                chosen[long] = choose_mark(self.policy, position.qty, *parsed)
            valued.append(value_position(position, chosen[long], now.text, now.ns))

    def _value(self, position: Position, entry: Json, now: _Now) -> PositionValuation:
        return value_position(position, choose_mark(self.policy, position.qty, *self._parsed(position.symbol, entry)),
                              now.text, now.ns)

    def _parsed(self, symbol: str, entry: Json) -> ParsedMarks:
        """A marks entry as models, parsed once per stored entry (entries are replaced on change, never mutated)."""
        cached = self._parsed_marks.get(symbol)
        if cached is not None and cached[0] is entry:
            return cached[1]
        parsed = _parse_marks(entry)
        self._parsed_marks[symbol] = (entry, parsed)
        return parsed

    def _book(self, symbol: str, pending: dict[str, Json]) -> list[Position]:
        """The Positions of ``symbol``'s book, parsed once per stored book (table values are replaced on change)."""
        book = self._positions(symbol, pending)
        cached = self._parsed_books.get(symbol)
        if cached is not None and cached[0] is book:
            return cached[1]
        parsed = [self._position(symbol, account, raw) for account, raw in book.items()]
        self._parsed_books[symbol] = (book, parsed)
        return parsed

    def _position(self, symbol: str, account: str, raw: Json) -> Position:
        """The Position of a table entry, parsed once per stored value (kept while the stored dict is the same)."""
        cached = self._parsed_positions.get((symbol, account))
        if cached is not None and cached[0] is raw:
            return cached[1]
        position = Position.model_validate(raw)
        self._parsed_positions[(symbol, account)] = (raw, position)
        return position

    def _positions(self, symbol: str, pending: dict[str, Json]) -> Json:
        if symbol in pending:
            return pending[symbol]
        return self.positions_by_symbol.get(symbol) or {}

    def _marks(self, symbol: str, pending: dict[str, Json]) -> Json:
        if symbol in pending:
            return pending[symbol]
        return self.marks_by_symbol.get(symbol) or {}


class _Now:
    """A batch's valuation time: one clock read, formatted once, kept as an integer for the latency metrics."""

    __slots__ = ("ns", "text")

    def __init__(self) -> None:
        self.ns = now_ns()
        self.text = format_ns(self.ns)


ParsedMarks = tuple[QuoteMark | None, LastTrade | None, PreviousClose | None]


def _parse_marks(entry: Json) -> ParsedMarks:
    price = quote_mark(entry["price"]) if entry.get("price") else None
    trade = LastTrade.model_validate(entry["trade"]) if entry.get("trade") else None
    close = PreviousClose.model_validate(entry["close"]) if entry.get("close") else None
    return price, trade, close


def _mark_moved(policy: MarkPolicy, stored: QuoteMark | None, price: QuoteMark) -> bool:
    """Whether a new quote moves the mark a position is valued at (the mid, or the bid or ask)."""
    if stored is None:
        return True
    if policy == "mid":
        return stored.mid != price.mid
    return (stored.bid, stored.ask) != (price.bid, price.ask)


def _decode_or_text(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "replace")

