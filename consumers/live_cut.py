"""A consistent cut of a moving topic: read it to its end, remember where that was, read on from there later.

``tickwire check`` and ``tickwire diff live`` compare a live pipeline, which keeps consuming, with what a
topic says up to a cut. :class:`TopicCursor` reads a topic incrementally and records the cut (next offset
per partition) each read reached; :class:`PriceHistory` keeps every state a symbol's latest price passed
through, so a live value can be placed before, at or after the cut instead of just "different".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from tickwire.kafka import READ_ISOLATION, topic_partitions

READ_DEADLINE_S = 60.0
READ_FETCH_WAIT_S = 0.5  # aiokafka's default


class TopicCursor:
    """Reads one topic (or some partitions of it) on from the last cut; :meth:`read_to_end` returns what is new.

    Each read uses a fresh group-less consumer seeked to the cut, and reads to the end offsets of that moment.
    """

    def __init__(self, bootstrap: str, topic: str, keys: set[bytes] | None = None,
                 from_offsets: dict[int, int] | None = None, **security: Any) -> None:
        self.topic = topic
        self.keys = keys
        self.from_offsets = from_offsets  # only these partitions, from these offsets (default: all, from the start)
        self._bootstrap = bootstrap
        self._security = security
        self.cut: dict[int, int] = {}  # partition -> next offset: where the last read stopped

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=round(READ_FETCH_WAIT_S * 1000),
                                isolation_level=READ_ISOLATION, **self._security)

    async def start(self) -> None:
        """Find the partitions and set the first cut to where reading starts (ValueError: no such topic)."""
        consumer = self._consumer()
        try:
            await consumer.start()  # inside the try: a refused start still owns a client to close
            # A metadata round trip either way: aiokafka's group-less consumer raises CancelledError from stop()
            # when stopped before its background task ever ran.
            parts = await topic_partitions(consumer, self.topic)
            if not parts:
                raise ValueError(f"no topic {self.topic!r} on the broker")
            if self.from_offsets is not None:
                self.cut = {p: self.from_offsets[p] for p in sorted(set(self.from_offsets) & set(parts))}
            else:
                tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
                self.cut = {tp.partition: offset for tp, offset in (await consumer.beginning_offsets(tps)).items()}
        finally:
            await consumer.stop()

    async def stop(self) -> None:
        """Nothing stays open between reads (kept so callers can treat the cursor as a resource)."""

    async def read_to_end(self, deadline_s: float = READ_DEADLINE_S) -> list[ConsumerRecord]:
        """Records (``keys`` filtered) from the last cut to the partitions' end offsets now, per partition in offset
        order; the new cut is that end. TimeoutError when no record comes for ``deadline_s``."""
        tps = [TopicPartition(self.topic, p) for p in sorted(self.cut)]
        if not tps:
            return []
        consumer = self._consumer()
        try:
            await consumer.start()
            ends = await consumer.end_offsets(tps)
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self.cut[tp.partition])
            out: list[ConsumerRecord] = []
            pending = {tp for tp in tps if self.cut[tp.partition] < ends[tp]}
            stop_at = time.monotonic() + deadline_s
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=200)
                if batch:  # the deadline is for a stall, not for the whole read: a day's topic takes minutes
                    stop_at = time.monotonic() + deadline_s
                for tp, records in batch.items():
                    out.extend(r for r in records if r.offset < ends[tp] and (self.keys is None or r.key in self.keys))
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:  # offsets may skip (compaction, transaction markers)
                        pending.discard(tp)
                if pending and time.monotonic() > stop_at:
                    raise TimeoutError(f"reading {self.topic} stalled: nothing came for {deadline_s}s")
            self.cut = {tp.partition: max(self.cut[tp.partition], ends[tp]) for tp in tps}
            return out
        finally:
            await consumer.stop()


@dataclass(frozen=True)
class PriceState:
    """One state a symbol's latest price passed through: the fields, and the quote (partition, offset) behind it."""

    fields: dict[str, Any]
    partition: int
    offset: int


@dataclass
class PriceHistory:
    """Every latest-price state per symbol, in the order the topic produced them."""

    states: dict[str, list[PriceState]] = field(default_factory=dict)

    def add(self, symbol: str, state: PriceState) -> None:
        """A newer latest price of ``symbol``."""
        self.states.setdefault(symbol, []).append(state)

    def position(self, symbol: str, actual: dict[str, Any], fields: tuple[str, ...]) -> int | None:
        """Index of the (last) state whose ``fields`` all equal ``actual``'s, or None."""
        for index in range(len(self.states.get(symbol, [])) - 1, -1, -1):
            state = self.states[symbol][index].fields
            if all(same_value(state.get(f), actual.get(f)) for f in fields):
                return index
        return None

    def mids(self, symbol: str) -> list[Decimal]:
        """The mids the symbol's latest price took, oldest first."""
        return [s.fields["mid"] for s in self.states.get(symbol, [])]


def same_value(want: Any, got: Any) -> bool:
    """Equal as the oracle compares: Decimals by value (``"1.50" == 1.5``), anything else exactly."""
    if isinstance(want, Decimal):
        try:
            return got is not None and not isinstance(got, bool) and Decimal(str(got)) == want
        except ArithmeticError:
            return False
    return bool(want == got)
