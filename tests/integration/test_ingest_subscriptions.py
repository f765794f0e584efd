"""Dynamic subscriptions: the control topic drives (un)subscribe while streaming, by reference counting.

alpaca-py deadlocks when subscriptions change from its own loop (issue #491); these tests change them
from the ingest's loop while data flows, and check what reaches the feed and Kafka.
"""

from __future__ import annotations

import uuid

import pytest

from alpaca_feed.server import AlpacaFeedServer
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import QUOTES_RAW
from tests.helpers import unique_symbol
from tests.integration.test_ingest_harness import (
    DEADLINE,
    MakeFeed,
    quote,
    records_of,
    running_ingest,
    send_requests,
    until,
)

pytestmark = pytest.mark.integration


def streams(feed: AlpacaFeedServer, symbol: str) -> bool:
    """True if a live session is subscribed to the symbol's quotes."""
    return any(s.subscriptions.covers("quotes", [symbol]) for s in feed.sessions if s.authenticated)


async def test_ingest_given_control_requests_subscribes_and_unsubscribes_while_streaming(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test that a symbol requested by two sources is subscribed on the live socket, stays while one source
    still wants it, goes when the last releases it, and that the stream keeps flowing (no deadlock, no
    reconnect)."""
    # Arrange
    base, wanted = unique_symbol("S"), unique_symbol("S")
    topic = f"subscriptions-{uuid.uuid4().hex[:8]}"
    feed = await make_feed(rate_per_symbol=0)
    t0 = now_ns()
    async with running_ingest(kafka_bootstrap, redis_url, feed, [base], control_topic=topic) as ingest:
        await feed.wait_for_subscription("quotes", [base], timeout=DEADLINE)
        reader = ingest.service.reader

        # Act
        await send_requests(kafka_bootstrap, topic, [(f" {wanted.lower()}", "subscribe", "api"),
                                                     (wanted, "subscribe", "positions")])
        await feed.wait_for_subscription("quotes", [wanted], timeout=DEADLINE)
        await feed.wait_for_subscription("trades", [wanted], timeout=DEADLINE)
        feed.inject([quote(wanted, 30.0, t0)])
        streamed = await records_of(kafka_bootstrap, QUOTES_RAW.name, wanted, 1)
        await send_requests(kafka_bootstrap, topic, [(wanted, "unsubscribe", "api")])
        await until(lambda: reader.applied >= 3, "the api's unsubscribe applied")
        kept_while_positions_want_it = streams(feed, wanted)
        await send_requests(kafka_bootstrap, topic, [(wanted, "unsubscribe", "positions")])
        await feed.wait_until(lambda: not streams(feed, wanted), DEADLINE, "the feed to unsubscribe it")
        feed.inject([quote(base, 10.0, t0 + NS_PER_SECOND), quote(wanted, 31.0, t0 + NS_PER_SECOND)])
        base_after = await records_of(kafka_bootstrap, QUOTES_RAW.name, base, 1)
        status = ingest.status

    # Assert
    assert streamed[0]["bp"] == 30.0
    assert kept_while_positions_want_it
    assert base_after[0]["bp"] == 10.0
    assert status.subscribed_symbols == [base] and status.connected
    assert feed.connection_count == 1, "changing symbols must not need a reconnect"
    assert ingest.service.subscriptions.sources(wanted) == frozenset()


async def test_ingest_given_restart_rebuilds_subscriptions_from_the_control_topic(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test that the control topic is read from the beginning: a restarted ingest subscribes what sources
    still want (and not what they released) at its first connect."""
    # Arrange
    base, kept, released = unique_symbol("R"), unique_symbol("R"), unique_symbol("R")
    topic = f"subscriptions-{uuid.uuid4().hex[:8]}"
    feed = await make_feed(rate_per_symbol=0)
    await send_requests(kafka_bootstrap, topic, [(kept, "subscribe", "api"), (released, "subscribe", "api"),
                                                 (released, "unsubscribe", "api"), ("not a symbol", "subscribe", "api"),
                                                 (base, "unsubscribe", "config")])

    # Act
    async with running_ingest(kafka_bootstrap, redis_url, feed, [base], control_topic=topic) as ingest:
        await feed.wait_for_subscription("quotes", [base, kept], timeout=DEADLINE)
        first_subscribe = [s.subscriptions.symbols("quotes") for s in feed.sessions]
        status = ingest.status

    # Assert
    assert [sorted(symbols) for symbols in first_subscribe] == [sorted([base, kept])]
    assert status.subscribed_symbols == sorted([base, kept])
    assert feed.connection_count == 1


async def test_ingest_given_symbol_limit_keeps_extra_symbols_pending_until_a_slot_frees(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test the feed's symbol limit (TICKWIRE_MAX_SYMBOLS): a symbol over it is not sent to Alpaca (no 405),
    is reported pending with a clear reason, and is subscribed once another symbol is released."""
    # Arrange
    base, first, extra = unique_symbol("L"), unique_symbol("L"), unique_symbol("L")
    topic = f"subscriptions-{uuid.uuid4().hex[:8]}"
    feed = await make_feed(rate_per_symbol=0)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [base], control_topic=topic, max_symbols=2) as ingest:
        await feed.wait_for_subscription("quotes", [base], timeout=DEADLINE)

        # Act
        await send_requests(kafka_bootstrap, topic, [(first, "subscribe", "api")])
        await feed.wait_for_subscription("quotes", [first], timeout=DEADLINE)
        # Kafka orders requests per symbol (partition), not across symbols: send the extra one after.
        await send_requests(kafka_bootstrap, topic, [(extra, "subscribe", "api")])
        full = await until(lambda: (s := ingest.status).pending_symbols and s, "a pending symbol")
        streams_extra_while_full = streams(feed, extra)
        await send_requests(kafka_bootstrap, topic, [(first, "unsubscribe", "api")])
        await feed.wait_for_subscription("quotes", [extra], timeout=DEADLINE)
        after = ingest.status

    # Assert
    assert full.pending_symbols == [extra] and "symbol limit 2 reached" in full.detail, full.detail
    assert not streams_extra_while_full
    assert after.subscribed_symbols == sorted([base, extra]) and after.pending_symbols == []
    assert feed.auth_rejections == 0 and feed.connection_count == 1
