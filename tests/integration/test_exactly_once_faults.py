"""Exactly once under faults: the processor, the ingest and the broker SIGKILLed mid-stream at 1,000 quotes/s.

Each kill is followed by a restart and by prices flowing again. At the end the feed halts, the pipeline
drains, and two checks read what a downstream service would (committed records only): the output audit
(``consumers/output_audit.py``: every quote of ``quotes.raw`` became exactly one price or dead letter, every
position's last revaluation is at its newest price, nothing twice) and the consistency oracle (Redis equal to
its rebuild from the topics).

Under ``exactly_once`` both must be exact. Under ``at_least_once`` the test prints how many duplicates each kill
produced (a figure to compare, not a check). The suite runs one kill of each under ``exactly_once``;
``TICKWIRE_LONG_TESTS=1`` runs five of each under both guarantees (the issue's proof).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from consumers.output_audit import OutputAudit, audit_outputs
from deploy.embedded import EmbeddedBroker
from schemas.topics import pnl_key, price_key
from tests.conftest import TEST_PARTITIONS
from tests.helpers import eventually
from tests.integration.test_chaos import Pipeline, pipeline
from tickwire.topic_admin import ensure_topics

LONG = os.environ.get("TICKWIRE_LONG_TESTS") == "1"
ROUNDS = 5 if LONG else 1
GUARANTEES = ("exactly_once", "at_least_once") if LONG else ("exactly_once",)
SYMBOLS, RATE_PER_SYMBOL = 10, 100  # 1,000 quotes/s
KILLS = ("processor", "ingest", "broker")

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(1500 if LONG else 400)]


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_given_processor_ingest_and_broker_killed_mid_stream_then_outputs_are_exact_under_exactly_once(
    guarantee: str, redis_url: str, redis: Redis, log_dir: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    kills: list[tuple[str, int, int]] = []  # (what, price and P&L duplicates it added)
    broker = EmbeddedBroker(tmp_path / "kafka", log_dir / f"eos-broker-{guarantee}")
    await broker.start()
    try:
        await ensure_topics(broker.bootstrap, TEST_PARTITIONS)
        async with pipeline(broker.bootstrap, redis_url, log_dir, rate=RATE_PER_SYMBOL, symbols_n=SYMBOLS,
                            TICKWIRE_PROCESSING_GUARANTEE=guarantee) as p:
            async def priced() -> bool:
                return bool(await redis.hlen(pnl_key(p.account)) == 2 and await p.priced_after(redis, ""))

            await eventually(priced, 120, "prices and P&L before the kills", p.ingest, p.processor)
            duplicates = pnl_duplicates = 0
            for _ in range(ROUNDS):
                for what in KILLS:
                    mark = await newest_common_price(redis, p)
                    await kill_and_restart(what, p, broker)
                    await eventually(lambda m=mark: p.priced_after(redis, m), 90, f"prices after the {what} kill",
                                     p.ingest, p.processor)
                    counted = await audit(p)
                    kills.append((what, counted.price_duplicates - duplicates,
                                  counted.pnl_duplicates - pnl_duplicates))
                    duplicates, pnl_duplicates = counted.price_duplicates, counted.pnl_duplicates
            report = await p.converged(redis, timeout=120)
            final = await audit(p)
            alive = p.ingest.running and p.processor.running
    finally:
        await broker.stop()

    by_kill = ", ".join(f"{what} +{prices}/+{pnl}" for what, prices, pnl in kills)
    print(f"{guarantee}: {len(kills)} kills in {time.monotonic() - started:.0f}s; duplicates per kill "
          f"(prices/pnl): {by_kill}; {final.summary()}; oracle: {report.summary()}")
    assert alive
    assert final.quotes_in > 0 and final.prices_out > 0 and final.positions == 2
    if guarantee == "exactly_once":
        assert final.exact, final.summary()


async def newest_common_price(redis: Redis, p: Pipeline) -> str:
    """The oldest of the symbols' newest prices: every symbol has been priced up to it."""
    values = await redis.mget([price_key(s) for s in p.symbols])
    return min(orjson.loads(v)["timestamp"] for v in values if v is not None)


async def kill_and_restart(what: str, p: Pipeline, broker: EmbeddedBroker) -> None:
    """SIGKILL ``what`` (no flush, no commit, no goodbye) and start it again, the broker on the same data."""
    if what == "broker":
        await broker.kill()
        await broker.start()
        return
    process = p.processor if what == "processor" else p.ingest
    assert process.proc is not None
    os.kill(process.proc.pid, signal.SIGKILL)
    await asyncio.wait_for(process.proc.wait(), 15)
    await (p.new_processor() if what == "processor" else p.new_ingest()).start()


async def audit(p: Pipeline) -> OutputAudit:
    return await audit_outputs(p.bootstrap, set(p.symbols), {p.account})
