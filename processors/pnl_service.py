"""The worker's one PnLEmitter, wired to its tables, Redis and settings (both P&L-feeding agents share it)."""

from __future__ import annotations

import time

from processors.app import settings
from processors.clients import outputs, redis
from processors.mark_cadence import MarkCadence
from processors.pnl_batch import PnLJoiner
from processors.pnl_conflation import PnLConflator
from processors.pnl_emitter import PnLEmitter
from processors.pnl_projection import PnLProjector
from processors.subscription_keeper import SubscriptionKeeper
from processors.tables import marks_by_symbol, positions_by_symbol

pnl_emitter = PnLEmitter(
    PnLJoiner(positions_by_symbol, marks_by_symbol, settings.mark_policy),
    PnLConflator(settings.pnl_min_change, settings.pnl_min_change_bps, settings.pnl_max_delay_s),
    SubscriptionKeeper(settings.unsubscribe_grace_s),
    PnLProjector(redis, trade_ttl_seconds=settings.price_ttl_s),
    outputs,
)
mark_cadence = MarkCadence(settings.pnl_mark_interval_s)


async def release_marks(*, all_held: bool = False) -> None:
    """Apply the held marks that are due (all of them with ``all_held``, as before an offset commit)."""
    now = time.monotonic()
    marks = mark_cadence.drain(now) if all_held else mark_cadence.due(now)
    if marks:
        await pnl_emitter.apply(marks)
