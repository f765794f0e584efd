"""StreamRouter: the hot path. Each frame's market data goes to the queue; clocks and gap bookkeeping aside."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

import structlog

from producers.feed_source import MessageRouting
from producers.gaps import GapTracker
from producers.kafka_publisher import RawEventPublisher
from producers.staleness import StalenessMonitor

log = structlog.get_logger(__name__)

SYMBOL_LIMIT_EXCEEDED = 405
SLOW_CLIENT = 407


class StreamRouter:
    """Routes decoded frames. Never blocks, never raises: a bad message is counted and skipped.

    Per symbol it keeps the receive time of the last message (staleness) and the exchange time ``t``
    of the last one queued (gap start, kept as received: converting is left to the rare gap).
    Data for symbols no longer subscribed (Alpaca keeps sending "for a short while") is counted as late.
    """

    def __init__(
        self,
        publisher: RawEventPublisher,
        gaps: GapTracker,
        staleness: StalenessMonitor,
        subscribed: Collection[str],
        *,
        routing: MessageRouting,
    ) -> None:
        self.publisher = publisher
        self.routing = routing  # the feed source's message letters
        self.gaps = gaps
        self.staleness = staleness
        self.subscribed = subscribed  # the ingest's live set (mutated by it)
        self.last_received_ns: dict[str, int] = {}
        self.last_queued_t: dict[str, Any] = {}
        self.last_any_ns = 0
        self.malformed = 0
        self.late = 0
        self.errors: Counter[int] = Counter()
        self.acknowledged: dict[str, list[str]] = {}

    def on_frame(self, messages: list[Any], received_ns: int) -> None:
        """Handle one frame (alpaca-py raw maps, ``t`` as msgpack Timestamp): one hand-over per frame."""
        publisher = self.publisher
        received = publisher.counters.received
        room = publisher.room()
        accepted: list[dict[str, Any]] = []
        gaps = self.gaps
        subscribed = self.subscribed
        last_queued_t = self.last_queued_t
        data_types, status_type = self.routing.data, self.routing.status
        for message in messages:
            if type(message) is not dict:
                self.malformed += 1
                continue
            kind = message.get("T")
            if type(kind) is not str:  # unhashable (a list) would raise below and drop the session
                self.malformed += 1
                continue
            if kind in data_types:
                symbol = message.get("S")
                if type(symbol) is not str:  # no symbol to key or route it by
                    self.malformed += 1
                    continue
                if symbol not in subscribed:
                    self.late += 1
                    continue
                self.last_received_ns[symbol] = received_ns
                received[kind] += 1
                if kind == status_type:
                    self.staleness.on_status(symbol, message.get("sc"))
                elif room > 0:
                    room -= 1
                    accepted.append(message)
                    stamp = message.get("t")
                    last_queued_t[symbol] = stamp
                    if gaps.waiting:
                        gaps.observe(symbol, stamp, received_ns)
                else:
                    publisher.refuse()
                    gaps.dropped(symbol, last_queued_t.get(symbol), received_ns)
                self.last_any_ns = received_ns
            elif kind == "subscription":
                self.acknowledged = {k: v for k, v in message.items() if k != "T" and isinstance(v, list)}
            elif kind == "error":
                self._on_error(message)
            # "success" and unknown types are ignored, like alpaca-py does
        publisher.put(accepted, received_ns)

    def on_malformed(self, error: str) -> None:
        """A frame could not be decoded at all."""
        self.malformed += 1
        if self.malformed in (1, 10, 100) or self.malformed % 1000 == 0:
            log.warning("malformed frame from alpaca skipped", error=error, malformed_total=self.malformed)

    def forget(self, symbol: str) -> None:
        """``symbol`` was unsubscribed."""
        self.last_received_ns.pop(symbol, None)
        self.last_queued_t.pop(symbol, None)

    def _on_error(self, message: dict[str, Any]) -> None:
        code = message.get("code")
        self.errors[code if isinstance(code, int) else 0] += 1
        if code == SYMBOL_LIMIT_EXCEEDED:
            log.error("alpaca refused the subscription: symbol limit exceeded (405); the previous set stays "
                      "subscribed - lower TICKWIRE_MAX_SYMBOLS to the plan's limit", msg=message.get("msg"))
        elif code == SLOW_CLIENT:
            log.error("alpaca reports this client as slow (407); it will disconnect and the ingest reconnects")
        else:
            log.warning("alpaca error message", code=code, msg=message.get("msg"))
