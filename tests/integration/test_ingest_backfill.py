"""Gap repair over REST: what the stream missed while down is re-published, marked as backfill.

The local feed records everything it publishes (also with no session connected) and serves it through
Alpaca's REST API, which the ingest reads with alpaca-py's real StockHistoricalDataClient.
"""

from __future__ import annotations

from typing import Any

import pytest

from deploy.embedded.readiness import free_port
from schemas.events import RawBar, RawQuote, RawTrade
from schemas.timestamps import NS_PER_SECOND, format_ns, now_ns
from schemas.topics import BARS_RAW, FEED_GAPS, QUOTES_RAW, TRADES_RAW
from tests.helpers import unique_symbol
from tests.integration.test_ingest_harness import (
    DEADLINE,
    MakeFeed,
    dumps,
    quote,
    records_of,
    running_ingest,
    trade,
    until,
)

pytestmark = pytest.mark.integration
S = NS_PER_SECOND
MINUTE = 60 * S


def bar(symbol: str, minute_ns: int, close: float) -> dict[str, Any]:
    return {"T": "b", "S": symbol, "o": close, "h": close, "l": close, "c": close, "v": 100, "n": 1, "vw": close,
            "t": minute_ns}


def backfill(value: dict[str, Any]) -> bool:
    return value.get("source") == "backfill"


async def test_ingest_given_drop_backfills_missed_trades_bars_and_latest_quote_from_rest(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test the repair of a reconnect gap: trades strictly between the last message before and the first
    after, the minute bars that closed inside it and the newer latest quote reach the raw topics with
    source=backfill and the gap's id; nothing from outside the window is re-published."""
    # Arrange
    symbol = unique_symbol("G")
    feed = await make_feed(rate_per_symbol=0)
    base = (now_ns() // MINUTE - 3) * MINUTE  # exchange times a few minutes back, on a minute mark
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], alpaca_data_url=feed.http_url()) as ingest:
        await feed.wait_for_subscription("trades", [symbol], timeout=DEADLINE)
        feed.inject([bar(symbol, base - MINUTE, 9.0), trade(symbol, 10.0, base + 5 * S, 1),
                     quote(symbol, 10.0, base + 10 * S), trade(symbol, 10.1, base + 10 * S + 1, 2)])
        await records_of(kafka_bootstrap, TRADES_RAW.name, symbol, 2)

        # Act
        feed.faults.reject_handshakes(status=429, seconds=DEADLINE)
        await feed.faults.drop()
        feed.inject([trade(symbol, 10.2, base + 20 * S, 3), quote(symbol, 10.3, base + 25 * S),
                     trade(symbol, 10.4, base + 30 * S, 4), bar(symbol, base, 10.2)])
        feed.faults.clear()
        await feed.wait_for_connections(feed.connection_count + 1, timeout=DEADLINE)
        await feed.wait_for_subscription("trades", [symbol], timeout=DEADLINE)
        feed.inject([trade(symbol, 10.5, base + 90 * S, 5)])
        [gap] = await records_of(kafka_bootstrap, FEED_GAPS.name, symbol, 1)
        trades = await records_of(kafka_bootstrap, TRADES_RAW.name, symbol, 2, where=backfill)
        bars = await records_of(kafka_bootstrap, BARS_RAW.name, symbol, 1, where=backfill)
        quotes = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 1, where=backfill)
        status = await until(lambda: (s := ingest.status).backfilled >= 4 and s, "backfill counted")

    # Assert
    assert (gap["last_before"], gap["first_after"]) == (format_ns(base + 10 * S + 1), format_ns(base + 90 * S))
    assert [t["i"] for t in trades] == [3, 4], dumps(trades)
    assert [t["t"] for t in trades] == [format_ns(base + 20 * S), format_ns(base + 30 * S)]
    assert [b["t"] for b in bars] == [format_ns(base)], "only the bar whose minute closed inside the gap"
    assert [q["bp"] for q in quotes] == [10.3]
    for value, model in ((trades[0], RawTrade), (bars[0], RawBar), (quotes[0], RawQuote)):
        parsed = model.model_validate(value)
        assert (parsed.source, parsed.gap_id) == ("backfill", gap["gap_id"]) and parsed.received_at
    assert status.backfilled == 4 and status.backfill_failures == 0, dumps(status.model_dump())


async def test_ingest_given_rest_unreachable_counts_the_failed_repair_and_keeps_streaming(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test that a REST API that cannot be reached costs the repair (counted, logged), not the stream."""
    # Arrange
    symbol = unique_symbol("H")
    feed = await make_feed(rate_per_symbol=0)
    nowhere = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], alpaca_data_url=nowhere) as ingest:
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)

        # Act
        await feed.faults.drop()
        await feed.wait_for_connections(2, timeout=DEADLINE)
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)
        t0 = now_ns()
        feed.inject([quote(symbol, 11.0, t0)])
        [gap] = await records_of(kafka_bootstrap, FEED_GAPS.name, symbol, 1)
        status = await until(lambda: (s := ingest.status).backfill_failures and s, "a failed backfill")
        feed.inject([quote(symbol, 11.1, t0 + 1)])
        streamed = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 2)

    # Assert
    assert gap["first_after"] == format_ns(t0)
    assert (status.backfill_failures, status.backfilled) == (1, 0) and status.connected and status.healthy
    assert [q["bp"] for q in streamed] == [11.0, 11.1]
