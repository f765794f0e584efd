"""Replays of the registry's stages without a broker: which stage replays what, a run's outputs, P&L direct joins."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from consumers.tools.settings import ToolSettings
from domain.pnl_handler import PnLHandler
from domain.records import SourceRecord
from processors.stage_replay import replay_handlers
from schemas.events import PriceEvent
from schemas.topics import POSITIONS, replay_namespace
from tickwire.runtime.replay import ReplayContext, RunOutputs


class FakeProducer:
    """Records what a run sends; each send's delivery is already done."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> Any:
        import asyncio

        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def context(producer: Any, app_id: str = "app") -> ReplayContext:
    settings = ToolSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", TICKWIRE_PROCESSOR_APP_ID=app_id)
    return ReplayContext("r1", replay_namespace("r1"), Redis.from_url("redis://127.0.0.1:1/0"), producer, 60,
                         settings, {"max_quote_age_s": 5.0})


async def test_replay_handlers_given_topics_runs_the_stages_that_replay_them_over_their_inputs() -> None:
    producer = FakeProducer()
    (pnl,) = replay_handlers(context(producer), ["positions"])
    (price,) = replay_handlers(context(producer), ["quotes.raw"])
    both = replay_handlers(context(producer), ["app-marks", "quotes.raw"])
    with pytest.raises(ValueError, match="no stage replays 'prices'"):
        replay_handlers(context(producer), ["prices"])
    assert (pnl.name, pnl.topics) == ("pnl", ("positions", "app-marks", "bars.daily.raw"))
    assert pnl.output_topics == {"pnl": "pnl.replay.r1", "positions.rejected": "positions.rejected.replay.r1"}
    assert (price.name, price.topics) == ("price", ("quotes.raw",))
    assert price.output_topics == {"prices": "prices.replay.r1", "quotes.rejected": "quotes.rejected.replay.r1"}
    assert [h.name for h in both] == ["price", "pnl"]
    assert pnl.stage.settings.price_ttl_s == 60 and pnl.stage.projector.namespace == "replay:r1:"
    assert price.stage.settings.quote_age_limit_s == 5.0


async def test_run_outputs_given_declared_and_other_topics_renames_counts_and_drops() -> None:
    producer = FakeProducer()
    outputs = RunOutputs(producer, "r1", ["pnl", "positions.rejected"], "pnl", "positions.rejected")  # type: ignore[arg-type]
    await outputs.send_many("pnl", [(b"a:X", b"1"), (b"b:Y", b"2")])
    await outputs.send("positions.rejected", b"a:Z", b"3")
    await outputs.send("positions.by_symbol", b"a:X", b"4", partition_key=b"X")
    await outputs.send_many("subscriptions", [(b"positions:X", b"5")])
    await outputs.flush()
    assert producer.sent == [("pnl.replay.r1", b"a:X", b"1"), ("pnl.replay.r1", b"b:Y", b"2"),
                             ("positions.rejected.replay.r1", b"a:Z", b"3")]
    assert (outputs.counts.accepted, outputs.counts.rejected) == (2, 1)
    assert outputs.counts.symbols == {"X", "Y", "Z"} and outputs.counts.accounts == {"a", "b"}


def test_pnl_handler_given_no_rekey_joins_positions_at_once_and_a_tombstone_closes() -> None:
    handler = PnLHandler("mid", rekey=False)
    event = PriceEvent(symbol="AAPL", bid=Decimal("151.99"), ask=Decimal("152.01"), mid=Decimal("152.00"),
                       spread=Decimal("0.02"), spread_bps=Decimal(0), bid_size=1, ask_size=1,
                       timestamp="2026-01-01T00:00:01.000000000Z", exchange=None)
    position = orjson.dumps({"account": "a", "symbol": "AAPL", "qty": "100", "avg_entry_price": "150"})
    opened = handler.handle([SourceRecord(b"AAPL", event.to_json(), "app-marks", 0, 0),
                             SourceRecord(b"a:AAPL", position, POSITIONS.name, 1, 0)], now=0.0)
    closed = handler.handle([SourceRecord(b"a:AAPL", b"", POSITIONS.name, 1, 1, tombstone=True)], now=1.0)
    assert opened.rekeyed == [] and [(v.account, str(v.unrealized_pnl)) for v in opened.valued] == [("a", "200.00")]
    assert [(v.qty, v.price_source) for v in closed.valued] == [(Decimal(0), "real-time")]
    assert handler.positions_by_symbol["AAPL"] == {}
