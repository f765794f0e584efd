"""Latency histograms of the processor: every hop from exchange time to Redis, per output channel.

A quote's life: exchange time ``t`` -> ingest receive (``received_at``) -> Kafka append (the record's
timestamp) -> processor done -> Redis written and published. Channel ``price`` observes each hop of
every accepted quote (hop ``redis`` once per batch: one pipeline writes them all); channel ``pnl``
observes, once per revalued mark and batch (every position valued at that mark shares the figure),
exchange time -> valued -> Redis. Times come from the payloads, so no
hop costs a clock read per event; the stages hand them over as integers (a quote's time is parsed once, by
the validator; a mark's once, when the P&L stage stores it), so no hop parses text either. Kafka timestamps
have millisecond resolution.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram

from domain.pricing import Price
from domain.valuation import PositionValuation
from schemas.timestamps import NS_PER_SECOND, parse_ns

# 0.5 ms .. 30 s: the targets (10, 25, 50, 100 ms) are bucket bounds, so their quantiles are exact enough.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25,
           0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PRICE_HOPS = ("ingest", "kafka", "process", "redis", "end_to_end")
PNL_HOPS = ("valued", "redis", "end_to_end")

timestamp_ns = parse_ns  # RFC 3339 -> ns (tickwire's fixed-width form on a cached fast path)


class PricedText(Protocol):
    """A price with its times as RFC 3339 text (a ``PriceEvent``)."""

    @property
    def timestamp(self) -> str: ...
    @property
    def received_at(self) -> str | None: ...


class ValuedText(Protocol):
    """A revaluation with its times as RFC 3339 text (a ``PositionPnL``)."""

    @property
    def symbol(self) -> str: ...
    @property
    def price_source(self) -> str: ...
    @property
    def price_timestamp(self) -> str | None: ...
    @property
    def updated_at(self) -> str: ...


class LatencyMetrics:
    """Histogram ``tickwire_latency_seconds{channel, hop}``; children are bound once (labels() is slow)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.histogram = Histogram(
            "tickwire_latency_seconds", "Time of each hop from exchange time to Redis, per output channel",
            ["channel", "hop"], buckets=BUCKETS, registry=registry,
        )
        self._price = {hop: self.histogram.labels("price", hop) for hop in PRICE_HOPS}
        self._pnl = {hop: self.histogram.labels("pnl", hop) for hop in PNL_HOPS}

    def observe_priced(self, prices: Sequence[Price], appended_ns: Sequence[int], processed_ns: int,
                       projected_ns: int) -> None:
        """One batch of the price stage's prices: their times are integers already (the validator parsed them)."""
        if prices:
            self._observe_prices(((p.timestamp_ns, p.received_ns) for p in prices), appended_ns, processed_ns,
                                 projected_ns)

    def observe_prices(self, prices: Sequence[PricedText], appended_ns: Sequence[int], processed_ns: int,
                       projected_ns: int) -> None:
        """One batch of accepted prices; ``appended_ns[i]`` is the Kafka time of ``prices[i]``'s quote (0 = unknown)."""
        if prices:
            self._observe_prices(((parse_ns(p.timestamp), parse_ns(p.received_at) if p.received_at else None)
                                  for p in prices), appended_ns, processed_ns, projected_ns)

    def _observe_prices(self, times: Iterable[tuple[int, int | None]], appended_ns: Sequence[int],
                        processed_ns: int, projected_ns: int) -> None:
        hops = self._price
        hops["redis"].observe(_seconds(projected_ns - processed_ns))  # one Redis write per batch: one observation
        end_to_end, ingest, process, kafka = [], [], [], []
        for (exchange, received), appended in zip(times, appended_ns, strict=True):
            end_to_end.append(_seconds(projected_ns - exchange))
            if received:
                ingest.append(_seconds(received - exchange))
            if appended:
                process.append(_seconds(processed_ns - appended))
                if received:
                    kafka.append(_seconds(appended - received))
        for hop, values in (("end_to_end", end_to_end), ("ingest", ingest), ("process", process), ("kafka", kafka)):
            observe_many(hops[hop], values)

    def observe_valuations(self, valued: Sequence[PositionValuation], projected_ns: int) -> None:
        """The P&L stage's revaluations: the mark's exchange time and the valuation time are integers already."""
        self._observe_pnl(valued, projected_ns, lambda pnl: (pnl.price_ns, pnl.valued_ns))

    def observe_pnl(self, valued: Sequence[ValuedText], projected_ns: int) -> None:
        """Revaluations written to Redis at ``projected_ns`` (live marks only: a close is old by design)."""
        self._observe_pnl(valued, projected_ns, lambda pnl: (0, 0))

    def _observe_pnl(self, valued: Sequence[Any], projected_ns: int, times: Callable[[Any], tuple[int, int]]
                     ) -> None:
        seen: set[tuple[str, str | None, str]] = set()
        hops = self._pnl
        previous: tuple[str, str | None] = ("", None)
        for pnl in valued:
            if pnl.price_timestamp is previous[1] and pnl.symbol == previous[0]:
                continue  # a symbol's revaluations come together and share their mark's timestamp object
            previous = (pnl.symbol, pnl.price_timestamp)
            key = (pnl.symbol, pnl.price_timestamp, pnl.updated_at)
            if pnl.price_source != "real-time" or pnl.price_timestamp is None or key in seen:
                continue
            seen.add(key)
            exchange, updated = times(pnl)
            exchange = exchange or parse_ns(pnl.price_timestamp)  # a last trade's mark: parsed here, once per mark
            updated = updated or parse_ns(pnl.updated_at)
            hops["valued"].observe(_seconds(updated - exchange))
            hops["redis"].observe(_seconds(projected_ns - updated))
            hops["end_to_end"].observe(_seconds(projected_ns - exchange))


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, with one increment per bucket touched: prometheus_client has no
    batch call, and its ``observe`` takes a lock per value (half the price stage's metrics cost)."""
    if not values:
        return
    bounds = histogram._upper_bounds  # the last bound is +Inf, so every value has a bucket
    histogram._sum.inc(sum(values))
    for index, count in Counter(bisect_left(bounds, v) for v in values).items():  # first bound >= v, as observe
        histogram._buckets[index].inc(count)


def _seconds(ns: int) -> float:
    # Kafka's millisecond timestamps can land just before a nanosecond time taken earlier: clamp at 0.
    return max(ns, 0) / NS_PER_SECOND
