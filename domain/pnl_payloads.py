"""PnLPayloads: serialises revaluations, writing the parts that repeat once (each position's head, each mark).

A mark revalues every position in its symbol, and most of a revaluation's JSON does not change with the
mark: account, symbol, quantity and entry price. Formatting those Decimals again for every revaluation was
a fifth of the P&L stage's CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from domain.valuation import PositionValuation
from schemas.topics import position_key


class PnLPayloads:
    """The ``pnl`` record key and ``PositionValuation.to_json`` (byte for byte) of many revaluations, each
    position's key and head written once."""

    def __init__(self) -> None:
        # (account, symbol) -> (key, qty, entry price, head): the head is valid while the valuation carries the
        # same Decimal objects, which the join keeps for as long as the position is unchanged.
        self._positions: dict[tuple[str, str], tuple[bytes, Decimal, Decimal, bytes]] = {}

    def __call__(self, valued: Sequence[PositionValuation]) -> tuple[list[bytes], list[bytes]]:
        """The key and the JSON of each revaluation, in order."""
        positions = self._positions
        keys: list[bytes] = []
        payloads: list[bytes] = []
        mark: Decimal | None = None
        mark_text: str | None = None
        for pnl in valued:
            pair = (pnl.account, pnl.symbol)
            cached = positions.get(pair)
            if cached is None or cached[1] is not pnl.qty or cached[2] is not pnl.avg_entry_price:
                key = cached[0] if cached is not None else position_key(pnl.account, pnl.symbol).encode()
                cached = (key, pnl.qty, pnl.avg_entry_price, pnl.json_head())
                if pnl.qty == 0:
                    positions.pop(pair, None)  # closed: nothing to keep
                else:
                    positions[pair] = cached
            if pnl.mark_price is not mark:  # a symbol's revaluations share one mark object: format it once
                mark = pnl.mark_price
                mark_text = None if mark is None else format(mark, "f")
            keys.append(cached[0])
            payloads.append(cached[3] + pnl.json_tail(mark_text))
        return keys, payloads
