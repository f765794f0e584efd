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
    """``PositionValuation.to_json`` for many revaluations, byte for byte, with cached heads; and their keys."""

    def __init__(self) -> None:
        # (account, symbol) -> (qty, entry price, head): valid while the valuation carries the same Decimal
        # objects, which the join keeps for as long as the position is unchanged.
        self._heads: dict[tuple[str, str], tuple[Decimal, Decimal, bytes]] = {}
        self._keys: dict[tuple[str, str], bytes] = {}

    def keys(self, valued: Sequence[PositionValuation]) -> list[bytes]:
        """The ``pnl`` record key of each revaluation (``position_key``), in order."""
        keys = self._keys
        out: list[bytes] = []
        for pnl in valued:
            pair = (pnl.account, pnl.symbol)
            key = keys.get(pair)
            if key is None:
                key = keys[pair] = position_key(pnl.account, pnl.symbol).encode()
            out.append(key)
        return out

    def __call__(self, valued: Sequence[PositionValuation]) -> list[bytes]:
        """The JSON of each revaluation, in order."""
        heads = self._heads
        out: list[bytes] = []
        mark: Decimal | None = None
        mark_text: str | None = None
        for pnl in valued:
            key = (pnl.account, pnl.symbol)
            cached = heads.get(key)
            if cached is not None and cached[0] is pnl.qty and cached[1] is pnl.avg_entry_price:
                head = cached[2]
            elif pnl.qty == 0:
                heads.pop(key, None)  # closed: nothing to keep
                head = pnl.json_head()
            else:
                head = pnl.json_head()
                heads[key] = (pnl.qty, pnl.avg_entry_price, head)
            if pnl.mark_price is not mark:  # a symbol's revaluations share one mark object: format it once
                mark = pnl.mark_price
                mark_text = None if mark is None else format(mark, "f")
            out.append(head + pnl.json_tail(mark_text))
        return out
