"""Feed faults a soak injects into its local feed, each kept in Redis with when it began and when it was over.

Runs inside the feed driver's process (it holds the server). ``drop`` ends the ingest's session (a close
frame); ``mute`` keeps the socket open and sends no data, as alpaca-py #740's silent sockets do, until the
ingest notices the silence (``TICKWIRE_MUTE_AFTER_SECONDS``) and reconnects. A fault is over once a new
session is subscribed to every symbol again; its record then goes to the Redis list ``bench:feed:faults``.
The quotes generated while muted stay in the feed's REST history, where the ingest's gap repair finds them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import orjson
from redis.asyncio import Redis

from alpaca_feed.server import AlpacaFeedServer

FAULTS_KEY = "bench:feed:faults"
FAULTS = ("drop", "mute")


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault: wall-clock ns it began and ended, and whether the ingest came back by itself."""

    fault: str
    began_ns: int
    ended_ns: int
    recovered: bool
    detail: str = ""

    def to_json(self) -> bytes:
        """The Redis list entry."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> FaultRecord:
        """Back from a list entry."""
        return cls(**orjson.loads(raw))


async def inject(server: AlpacaFeedServer, fault: str, symbols: list[str], limit_s: float) -> FaultRecord:
    """Inject ``fault`` and wait (at most ``limit_s``) until the ingest is subscribed again on a new session."""
    if fault not in FAULTS:
        raise ValueError(f"unknown soak fault {fault!r}; known: {', '.join(FAULTS)}")
    began, before = time.time_ns(), server.connection_count
    deadline = time.monotonic() + limit_s
    detail = ""
    try:
        if fault == "drop":
            detail = f"{await server.faults.drop()} session(s) dropped"
        else:
            server.faults.mute()
        await server.wait_until(lambda: server.connection_count > before, limit_s, "the ingest to reconnect")
        if fault == "mute":
            server.faults.unmute()  # the ingest noticed and reconnected: the new session gets data
        await server.wait_for_subscription("quotes", symbols, max(0.1, deadline - time.monotonic()))
        recovered = True
    except TimeoutError:
        recovered, detail = False, f"{detail}; no subscribed session after {limit_s:.0f}s".lstrip("; ")
    finally:
        server.faults.unmute()
    return FaultRecord(fault, began, time.time_ns(), recovered, detail)


async def record(redis: Redis, fault: FaultRecord) -> None:
    """Append one fault's record for the soak to read."""
    await redis.rpush(FAULTS_KEY, fault.to_json())


async def recorded(redis: Redis) -> list[FaultRecord]:
    """Every fault recorded so far, in the order they ended."""
    return [FaultRecord.from_json(raw) for raw in await redis.lrange(FAULTS_KEY, 0, -1)]
