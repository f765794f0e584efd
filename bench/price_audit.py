"""Duplicates and gaps of ``prices`` against ``quotes.raw``: every price exactly once, none missing.

The price stage's rule (``domain.price_batch``): a valid quote becomes a price unless it is older than its
symbol's latest price. Folding ``quotes.raw`` per partition in offset order with that rule gives the prices
there must be; each is known by (symbol, exchange time), unique per symbol in the local feed. A price seen
more often than its quote asks for is a duplicate (e.g. re-sent after a processor lost its outputs), a quote
without its price a gap. Both topics are read from what they still hold: once retention has deleted from either,
per symbol only quotes and prices from the later of the two topics' oldest times on are compared, so retention
does not count as gaps. The topics are folded batch by batch and only the times are kept, as 8-byte integers
per symbol (``array``): 5 million retained quotes take ~80 MB, not GBs of records. (``consumers.output_audit``
counts the same for the tests, matching dead letters too, but holds whole topics' records: not a day's.)
Read committed, as every tickwire reader: under exactly once an aborted price is no duplicate.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from domain.quotes import QuoteValidator, Rejection
from schemas.timestamps import NS_PER_SECOND, parse_ns
from schemas.topics import PRICES, QUOTES_RAW
from tickwire.kafka import READ_ISOLATION, topic_partitions

READ_DEADLINE_S = 600.0  # a day's retained topics are millions of records


@dataclass(frozen=True, slots=True)
class PriceAudit:
    """What the comparison found."""

    quotes_read: int
    prices_read: int
    expected: int  # prices the compared quotes ask for
    duplicates: int
    gaps: int


class ExpectedPrices:
    """symbol -> exchange times (ns) of the quotes that must become prices, in order (the price stage's rule),
    fed ``quotes.raw``'s values per partition in offset order."""

    def __init__(self, max_age_s: float) -> None:
        self.validator = QuoteValidator(max_age_ns=int(max_age_s * NS_PER_SECOND))
        self.latest: dict[str, int] = {}
        self.times: dict[str, array] = {}  # type: ignore[type-arg]

    def add(self, values: Iterable[bytes | None]) -> None:
        """Fold the next values."""
        latest, times = self.latest, self.times
        for value in values:
            quote = self.validator.validate(value) if value is not None else None
            if quote is None or isinstance(quote, Rejection):
                continue
            if quote.timestamp_ns >= latest.get(quote.symbol, quote.timestamp_ns):  # not older than the latest
                latest[quote.symbol] = quote.timestamp_ns
                times.setdefault(quote.symbol, array("q")).append(quote.timestamp_ns)


def add_price_times(times: dict[str, array], values: Iterable[bytes | None]) -> None:  # type: ignore[type-arg]
    """Add the exchange times (ns) of ``prices`` values to ``times`` (symbol -> times)."""
    for value in values:
        if value is not None:
            price = orjson.loads(value)
            times.setdefault(price["symbol"], array("q")).append(parse_ns(price["timestamp"]))


def compare(expected: dict[str, array], published: dict[str, array],  # type: ignore[type-arg]
            oldest: dict[str, int] | None = None) -> tuple[int, int, int]:
    """(prices expected, duplicates, gaps) over the symbols of either side; ``oldest`` (symbol -> ns) leaves out
    what is older than both topics still hold."""
    expected_total = duplicates = gaps = 0
    for symbol in expected.keys() | published.keys():
        floor = (oldest or {}).get(symbol, 0)
        want = Counter(t for t in expected.get(symbol, ()) if t >= floor)
        got = Counter(t for t in published.get(symbol, ()) if t >= floor)
        expected_total += want.total()
        duplicates += (got - want).total()
        gaps += (want - got).total()
    return expected_total, duplicates, gaps


def oldest_common(expected: dict[str, array], published: dict[str, array]) -> dict[str, int]:  # type: ignore[type-arg]
    """symbol -> the later of the two topics' oldest times of it (retention may have cut either)."""
    return {s: max(expected[s][0], published[s][0]) for s in expected.keys() & published.keys()
            if expected[s] and published[s]}


class TopicValues:
    """Reads one topic from its beginning to its end offsets at the start, batch by batch (a day's topics are
    millions of records: they are folded as they come, never held whole)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest", isolation_level=READ_ISOLATION)
        self.read = 0
        self.trimmed = False  # retention deleted the topic's first records

    async def batches(self) -> AsyncIterator[list[bytes | None]]:
        """The values, partition by partition in offset order, one fetched batch at a time."""
        consumer = self.consumer
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in await topic_partitions(consumer, self.topic)]
            begins, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
            self.trimmed = any(offset > 0 for offset in begins.values())
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if begins[tp] < ends[tp]}
            stop_at = time.monotonic() + READ_DEADLINE_S
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=200)
                for tp, records in fetched.items():
                    values = [r.value for r in records if r.offset < ends[tp]]
                    self.read += len(values)
                    yield values
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:  # offsets may skip (transaction markers)
                        pending.discard(tp)
                if pending and time.monotonic() > stop_at:
                    raise TimeoutError(f"could not read {self.topic} to its end within {READ_DEADLINE_S:.0f}s")
        finally:
            await consumer.stop()


async def audit_prices(bootstrap: str, max_age_s: float) -> PriceAudit:
    """Read both topics to their end (the pipeline drained) and compare them."""
    quotes, prices = TopicValues(bootstrap, QUOTES_RAW.name), TopicValues(bootstrap, PRICES.name)
    expected = ExpectedPrices(max_age_s)
    async for batch in quotes.batches():
        expected.add(batch)
    published: dict[str, array] = {}  # type: ignore[type-arg]
    async for batch in prices.batches():
        add_price_times(published, batch)
    floors = oldest_common(expected.times, published) if quotes.trimmed or prices.trimmed else None
    total, duplicates, gaps = compare(expected.times, published, floors)
    return PriceAudit(quotes.read, prices.read, total, duplicates, gaps)
