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

READ_DEADLINE_S = 60.0


class TopicCursor:
    """A group-less consumer on every partition of one topic; :meth:`read_to_end` returns what is new."""

    def __init__(self, bootstrap: str, topic: str, keys: set[bytes] | None = None,
                 from_offsets: dict[int, int] | None = None, **security: Any) -> None:
        self.topic = topic
        self.keys = keys
        self.from_offsets = from_offsets  # only these partitions, from these offsets (default: all, from the start)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                          auto_offset_reset="earliest", **security)
        self._tps: list[TopicPartition] = []
        self.cut: dict[int, int] = {}  # partition -> next offset: where the last read stopped

    async def start(self) -> None:
        """Connect and assign every partition from its beginning (ValueError if the topic does not exist)."""
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            await self._consumer.topics()  # refreshes metadata
            parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            await self._consumer.stop()
            raise ValueError(f"no topic {self.topic!r} on the broker")
        chosen = sorted(parts if self.from_offsets is None else set(self.from_offsets) & set(parts))
        self._tps = [TopicPartition(self.topic, p) for p in chosen]
        self._consumer.assign(self._tps)
        if self.from_offsets is None:
            await self._consumer.seek_to_beginning(*self._tps)
        else:
            for tp in self._tps:
                self._consumer.seek(tp, self.from_offsets[tp.partition])

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()

    async def read_to_end(self, deadline_s: float = READ_DEADLINE_S) -> list[ConsumerRecord]:
        """Records (``keys`` filtered) from the last cut to the fetch high watermark seen now, per partition in
        offset order; the new cut is that high watermark (ListOffsets is wrong on the embedded broker)."""
        if not self._tps:
            return []
        ends: dict[TopicPartition, int] = {}
        out: list[ConsumerRecord] = []
        stop_at = time.monotonic() + deadline_s
        while True:
            batch = await self._consumer.getmany(*self._tps, timeout_ms=200)
            for records in batch.values():
                out.extend(r for r in records if self.keys is None or r.key in self.keys)
            for tp in self._tps:
                if tp not in ends and self._consumer.highwater(tp) is not None:
                    ends[tp] = self._consumer.highwater(tp)  # type: ignore[assignment]
            if len(ends) == len(self._tps) and all([await self._consumer.position(tp) >= ends[tp]
                                                    for tp in self._tps]):
                self.cut = {tp.partition: await self._consumer.position(tp) for tp in self._tps}
                return out
            if time.monotonic() > stop_at:
                raise TimeoutError(f"could not read {self.topic} to its end within {deadline_s}s")


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
