"""Per-hop latency from the processor's own histograms: scrape, diff two scrapes, estimate quantiles.

The probe sees end-to-end latency from outside; these tell where inside the pipeline the time went
(``tickwire_latency_seconds{channel, hop}``, see processors/latency.py).
"""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

METRIC = "tickwire_latency_seconds"
Buckets = dict[tuple[str, str], list[tuple[float, float]]]  # (channel, hop) -> [(upper bound, cumulative count)]


async def scrape(port: int) -> Buckets:
    """The cumulative bucket counts of every (channel, hop) now; empty if the endpoint does not answer."""
    try:
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=3)
        ) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    out: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == f"{METRIC}_bucket":
                key = (sample.labels["channel"], sample.labels["hop"])
                out.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
    for points in out.values():
        points.sort()
    return out


async def scrape_all(ports: list[int]) -> Buckets:
    """The bucket counts of every port's histograms, added up (the price and P&L processes observe different
    channels; several workers observe the same ones)."""
    out: Buckets = {}
    for port in ports:
        out = added(out, await scrape(port))
    return out


def added(one: Buckets, other: Buckets) -> Buckets:
    """Both scrapes' bucket counts, summed per (channel, hop) and bound."""
    out = dict(one)
    for key, points in other.items():
        totals = dict(out.get(key, []))
        out[key] = [(bound, totals.get(bound, 0.0) + count) for bound, count in points]
    return out


def difference(after: Buckets, before: Buckets) -> Buckets:
    """Bucket counts observed between two scrapes."""
    out: Buckets = {}
    for key, points in after.items():
        earlier = dict(before.get(key, []))
        out[key] = [(bound, count - earlier.get(bound, 0.0)) for bound, count in points]
    return out


def quantile_ms(points: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile (0-1) in ms, interpolated linearly inside its bucket like PromQL's histogram_quantile."""
    if not points or points[-1][1] <= 0:
        return None
    total = points[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if bound == float("inf"):
                return round(lower_bound * 1000, 2)  # beyond the last finite bucket: its bound is all we know
            inside = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return round((lower_bound + (bound - lower_bound) * inside) * 1000, 2)
        lower_bound, lower_count = bound, count
    return None


def summarize(buckets: Buckets) -> dict[str, dict[str, float | None]]:
    """``channel.hop`` -> count, p50 and p99 (ms) of a scrape difference."""
    return {
        f"{channel}.{hop}": {"count": points[-1][1] if points else 0,
                             "p50_ms": quantile_ms(points, 0.50), "p99_ms": quantile_ms(points, 0.99)}
        for (channel, hop), points in sorted(buckets.items())
    }
