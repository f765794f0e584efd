"""100 feed faults in a row against a real ingest (drop, drop without close frame, mute, 406, 407, 429,
malformed frames), with every reconnect, resubscription and gap accounted for. Long: TICKWIRE_LONG_TESTS=1."""

from __future__ import annotations

import os
import time

import pytest

from alpaca_feed.server import AlpacaFeedServer
from schemas.timestamps import format_ns, now_ns
from schemas.topics import FEED_GAPS, QUOTES_RAW
from tests.helpers import eventually, read_topic_until, unique_symbol
from tests.integration.test_ingest_harness import running_ingest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("TICKWIRE_LONG_TESTS") != "1",
                       reason="100 faults take minutes: set TICKWIRE_LONG_TESTS=1 to run them"),
    pytest.mark.timeout(1200),  # about a minute on an idle machine; the suite's 180 s limit is for ordinary tests
]

FAULTS = int(os.environ.get("TICKWIRE_FAULTS", "100"))
# Faults that end the session (the ingest must reconnect, resubscribe and announce a gap) ...
SESSION_FAULTS = ("drop", "drop_no_close", "mute", "reject_auth_406", "slow_client_407", "reject_handshakes_429")
# ... and those that must not (the socket stays, the frame is counted as malformed).
FRAME_FAULTS = ("malformed",)
CYCLE = SESSION_FAULTS + FRAME_FAULTS


async def inject(feed: AlpacaFeedServer, fault: str) -> None:
    """Apply one fault the way Alpaca would show it to the client."""
    faults = feed.faults
    if fault == "drop":
        await faults.drop()
    elif fault == "drop_no_close":
        await faults.drop(close_frame=False)
    elif fault == "mute":
        faults.mute()  # the ingest notices the silence (mute_after) and reconnects; unmuted once it has
    elif fault == "reject_auth_406":
        faults.reject_auth(406, count=1)  # the next auth is refused: "connection limit exceeded"
        await faults.drop()
    elif fault == "slow_client_407":
        faults.slow_client(max_pending_bytes=1)  # the next frame overflows: 407 and a disconnect
    elif fault == "reject_handshakes_429":
        faults.reject_handshakes(status=429, seconds=0.5)
        await faults.drop()
    elif fault == "malformed":
        faults.send_malformed("bad_msgpack")


async def test_ingest_given_100_feed_faults_in_a_row_reconnects_resubscribes_and_announces_each_gap(
    kafka_bootstrap: str, redis_url: str
) -> None:
    symbols = [unique_symbol("F"), unique_symbol("F")]
    feed = AlpacaFeedServer(rate_per_symbol=20, seed=3)
    await feed.start()
    started = time.monotonic()
    injected = {name: 0 for name in CYCLE}
    try:
        async with running_ingest(kafka_bootstrap, redis_url, feed, symbols, mute_after_s=1.0) as ingest:
            await feed.wait_for_subscription("quotes", symbols, timeout=30)
            for index in range(FAULTS):
                fault = CYCLE[index % len(CYCLE)]
                sessions = feed.connection_count
                malformed, gaps_before = ingest.status.malformed, ingest.status.gaps
                fault_at = format_ns(now_ns())
                await inject(feed, fault)
                injected[fault] += 1
                if fault in SESSION_FAULTS:
                    await feed.wait_until(lambda s=sessions: feed.connection_count > s, 30, f"reconnect after {fault}")
                    if fault == "mute":
                        feed.faults.unmute()
                    if fault == "slow_client_407":
                        feed.faults.clear()
                else:
                    await eventually(lambda m=malformed: _counted(ingest, m), 10, "the malformed frame counted")
                # Resubscribed, connected, data flowing again, and the gap (if any) counted before the next fault.
                await feed.wait_for_subscription("quotes", symbols, timeout=30)
                await eventually(lambda f=fault_at: _flowing(ingest, symbols, f), 30, f"data again after {fault}")
                want = gaps_before + (fault in SESSION_FAULTS)
                await eventually(lambda w=want: _gaps(ingest, w), 30, f"the gap of {fault} counted")
            status = ingest.status
            connections = feed.connection_count
            session_faults = sum(injected[f] for f in SESSION_FAULTS)
            # Read while the ingest runs: the last gap's event may still be on its way.
            gaps = await read_topic_until(kafka_bootstrap, FEED_GAPS.name,
                                          lambda vs: len({v["gap_id"] for v in vs if v.get("symbol") == symbols[0]})
                                          >= session_faults, 60)
            quotes = await read_topic_until(kafka_bootstrap, QUOTES_RAW.name,
                                            lambda vs: any(v.get("S") == symbols[0] for v in vs), 30)
    finally:
        await feed.stop()

    # Assert
    mine = {v["gap_id"]: v["reason"] for v in gaps if v.get("symbol") == symbols[0]}
    print(f"faults injected {sum(injected.values())} ({injected}); survived all; successful reconnects "
          f"{status.reconnects_total}; connection attempts {connections}; gaps {status.gaps} "
          f"({sorted(set(mine.values()))}); malformed {status.malformed}; in {time.monotonic() - started:.0f}s")
    assert status.connected and status.healthy
    assert status.reconnects_total == session_faults  # one successful reconnect per lost session
    assert status.gaps == session_faults and len(mine) == session_faults  # one gap per lost session, announced
    assert set(mine.values()) <= {"reconnect", "stall"}
    assert status.malformed == injected["malformed"]
    assert quotes


async def _counted(ingest: object, before: int) -> bool:
    return ingest.status.malformed > before  # type: ignore[attr-defined]


async def _flowing(ingest: object, symbols: list[str], since: str) -> bool:
    status = ingest.status  # type: ignore[attr-defined]
    return status.connected and all(status.last_message_at.get(s, "") > since for s in symbols)


async def _gaps(ingest: object, count: int) -> bool:
    return ingest.status.gaps >= count  # type: ignore[attr-defined]
