"""PnLHandler: the P&L stage's work as a function of a batch (positions, marks, closes in -> what to emit).

The live stage (``processors/pnl_stage.py``) and ``tickwire replay`` drive the same handler: it does no I/O.
A ``positions`` record is validated and, live, re-keyed by symbol for ``positions.by_symbol`` (the join reads
it back from there, co-partitioned with the marks); a replay has no partitions to line up, so the handler
joins it at once (``rekey=False``). Everything else goes through the join (:class:`~domain.pnl_join.PnLJoiner`),
its revaluations through the conflation (:class:`~domain.pnl_conflation.PnLConflator`), and the symbols that got
their first position or lost their last one through the :class:`~domain.subscription_keeper.SubscriptionKeeper`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.pnl_conflation import PnLConflator
from domain.pnl_join import PnLBatchResult, PnLJoiner
from domain.positions import validate_position
from domain.quotes import Rejection
from domain.records import DeadLetter, SourceRecord, dead_letter
from domain.subscription_keeper import SubscriptionKeeper
from domain.valuation import MarkPolicy, PositionValuation
from schemas.events import LastTrade, Position, PreviousClose, SubscriptionRequest
from schemas.topics import POSITIONS, POSITIONS_BY_SYMBOL, position_key

Json = dict[str, Any]


@dataclass(slots=True)
class PnLBatch:
    """What a batch (or a timer's release) produced, in order."""

    valued: list[PositionValuation] = field(default_factory=list)  # revaluations to emit (conflated)
    positions: list[Position] = field(default_factory=list)  # changed positions (qty 0 = closed)
    trades: list[LastTrade] = field(default_factory=list)
    closes: list[PreviousClose] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)  # (key, value, partition key)
    subscriptions: list[SubscriptionRequest] = field(default_factory=list)


class PnLHandler:
    """The join's tables (symbol-keyed, for the partitions the stage owns), the conflation and the keeper."""

    def __init__(self, policy: MarkPolicy, min_change: Decimal = Decimal(0), min_bps: Decimal = Decimal(0),
                 max_delay_s: float = 1.0, grace_s: float = 60.0, *, rekey: bool = True) -> None:
        self.positions_by_symbol: dict[str, Json] = {}  # symbol -> {account: Position JSON}
        self.marks_by_symbol: dict[str, Json] = {}  # symbol -> {"price", "trade", "close": JSON}
        self.partition_of: dict[str, int] = {}  # symbol -> its partition, to forget it when revoked
        self.joiner = PnLJoiner(self.positions_by_symbol, self.marks_by_symbol, policy)
        self.conflator = PnLConflator(min_change, min_bps, max_delay_s)
        self.keeper = SubscriptionKeeper(grace_s)
        self.rekey = rekey

    def handle(self, records: Sequence[SourceRecord], now: float | None = None) -> PnLBatch:
        """Apply one batch; ``now`` (monotonic seconds) paces the conflation and the unsubscribes."""
        batch = PnLBatch()
        joined: list[SourceRecord] = []
        for record in records:
            if record.topic == POSITIONS.name:
                self._position(record, batch, joined)
            else:
                joined.append(record)
                if record.key:
                    self.partition_of[symbol_of(record.key)] = record.partition
        if joined:
            result = self.joiner.apply(joined)
            batch.rejected += result.rejected
            batch.positions, batch.trades, batch.closes = result.positions, result.trades, result.closes
            batch.subscriptions = self.keeper.update(result.opened_symbols, result.emptied_symbols, now)
            batch.valued = self.conflator.offer(result.valued, now)
        return batch

    def due(self, now: float | None = None) -> PnLBatch:
        """Unsubscribes past their grace period and conflated revaluations that waited long enough."""
        return PnLBatch(subscriptions=self.keeper.due(now), valued=self.conflator.due(now))

    def holding(self) -> bool:
        """Whether revaluations or unsubscribes are held back (:meth:`due` has work)."""
        return bool(self.conflator.held or self.keeper.pending)

    def restore(self, records: Iterable[SourceRecord]) -> PnLBatchResult:
        """Apply records read back from the inputs (state only: what they value goes out with the next change)."""
        records = list(records)
        for record in records:
            if record.key:
                self.partition_of[symbol_of(record.key)] = record.partition
        return self.joiner.apply(records)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the state of symbols in partitions another member owns now."""
        gone = [symbol for symbol, partition in self.partition_of.items() if partition in partitions]
        for symbol in gone:
            self.positions_by_symbol.pop(symbol, None)
            self.marks_by_symbol.pop(symbol, None)
            del self.partition_of[symbol]

    def _position(self, record: SourceRecord, batch: PnLBatch, joined: list[SourceRecord]) -> None:
        outcome = validate_position(record.key, None if record.tombstone else record.value)
        if isinstance(outcome, Rejection):
            batch.rejected.append(dead_letter(record, outcome))
            return
        key, value = position_key(outcome.account, outcome.symbol).encode(), outcome.to_json()
        if self.rekey:
            batch.rekeyed.append((key, value, outcome.symbol.encode()))
        else:
            joined.append(SourceRecord(key, value, POSITIONS_BY_SYMBOL.name, record.partition, record.offset))


def symbol_of(key: bytes) -> str:
    """The symbol of a P&L input's key: a symbol, or ``account:symbol`` on the positions topics."""
    return key.decode("utf-8", "replace").rpartition(":")[2]
