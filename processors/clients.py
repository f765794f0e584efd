"""Connections the processor's agents share (one Redis client and one output producer per worker process)."""

from __future__ import annotations

from redis.asyncio import Redis

from processors.app import app, settings
from processors.output_producer import OutputProducer

redis = Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", health_check_interval=10)
outputs = OutputProducer(settings)


@app.task
async def _confirm_outputs_before_commits() -> None:
    """Faust flushes its producer before committing offsets: make that flush confirm the outputs too,
    and first hand the written-behind tables' pending values to their changelogs, so a committed offset
    never runs ahead of the table state a worker taking over recovers (else a SIGKILLed worker's
    successor re-accepts quotes older than ones already priced)."""
    from processors.pnl_service import release_marks
    from processors.tables import WRITTEN_BEHIND

    flush_faust_producer = app.producer.flush

    async def flush() -> None:
        await release_marks(all_held=True)  # a committed quote's mark has reached the P&L join
        for table in WRITTEN_BEHIND:
            table.flush()
        await flush_faust_producer()
        await outputs.flush()

    app.producer.flush = flush  # type: ignore[method-assign]


@app.on_before_shutdown.connect
async def _close_outputs(app, **kwargs) -> None:  # type: ignore[no-untyped-def]
    await outputs.stop()
