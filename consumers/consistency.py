"""Consistency checker (``tickwire check``): the oracle the reliability tests trust.

It rebuilds, from the raw topics alone, what the pipeline must show, and diffs that against Redis,
the Faust tables' changelogs and the API:

- **latest price per symbol**: among the quotes of ``quotes.raw`` that are valid (the documented
  rules, :class:`QuoteValidator`), the one with the newest exchange time (on a tie, the later
  offset) — stated as a maximum, not by re-running the processor's batch loop;
- **P&L per open position** (mark policy ``mid``): the last record of each ``positions`` key,
  valued at that expected mid, ``(mid - avg) * qty`` half-even to the cent; and each account's total.

Positions whose symbol has no expected live price are skipped (counted), not guessed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from domain.positions import validate_position
from domain.quotes import QuoteValidator, Rejection, ValidQuote
from schemas.timestamps import NS_PER_SECOND, format_ns
from schemas.topics import LATEST_PRICE_TABLE, POSITIONS, QUOTES_RAW, pnl_key, pnl_total_key, price_key

CENT = Decimal("0.01")
READ_DEADLINE_S = 60.0
PRICE_FIELDS = ("bid", "ask", "mid", "spread", "spread_bps", "bid_size", "ask_size", "timestamp", "exchange")
# price_timestamp is not compared: a quote that leaves the mid unchanged revalues nothing (by design).
PNL_FIELDS = ("qty", "avg_entry_price", "mark_price", "unrealized_pnl")
TABLE_FIELDS = ("bid", "ask", "mid", "timestamp")  # the table holds the same event; these decide monotonicity


@dataclass(frozen=True)
class Mismatch:
    """One value that differs from the oracle: where (``redis``, ``api``, ``table``), what, both sides."""

    where: str
    subject: str
    field: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.where} {self.subject} {self.field}: expected {self.expected}, got {self.actual}"


@dataclass
class Expected:
    """What the raw topics say the pipeline must show."""

    prices: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> price snapshot fields
    pnl: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # account -> symbol -> pnl fields
    totals: dict[str, Decimal] = field(default_factory=dict)  # account -> total of the valued positions
    quotes_read: int = 0
    quotes_valid: int = 0
    positions_read: int = 0
    positions_unpriced: int = 0
    unpriced_accounts: set[str] = field(default_factory=set)  # their stored totals include closes or nulls


@dataclass
class CheckReport:
    """The oracle's verdict: what was checked and every mismatch."""

    expected: Expected
    mismatches: list[Mismatch] = field(default_factory=list)
    values_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing differs."""
        return not self.mismatches

    def summary(self) -> str:
        """One line: the figures a reliability report quotes."""
        e = self.expected
        return (f"quotes read {e.quotes_read} (valid {e.quotes_valid}), symbols {len(e.prices)}, positions "
                f"{e.positions_read} (unpriced {e.positions_unpriced}), values checked {self.values_checked}, "
                f"mismatches {len(self.mismatches)}")


async def read_topic(bootstrap: str, topic: str, keys: set[bytes] | None = None,
                     deadline_s: float = READ_DEADLINE_S, **security: Any) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) of ``topic`` from its beginning to its fetch high watermark, per partition in
    offset order (``keys`` filters). Partition order is all that matters: records are keyed by symbol."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", **security)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # a refused start still owns a client: close it, no "Unclosed" warning
        raise
    try:
        parts = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        # The fetch high watermark, not ListOffsets: the embedded broker's end offsets are wrong.
        ends: dict[TopicPartition, int] = {}
        out: list[tuple[bytes | None, bytes | None]] = []
        stop_at = time.monotonic() + deadline_s
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out.extend((r.key, r.value) for r in records if keys is None or r.key in keys)
            for tp in tps:
                if tp not in ends and consumer.highwater(tp) is not None:
                    ends[tp] = consumer.highwater(tp)  # type: ignore[assignment]
            if len(ends) == len(tps) and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return out
            if time.monotonic() > stop_at:
                raise TimeoutError(f"could not read {topic} to its end within {deadline_s}s")
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.topics()  # refreshes metadata
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise ValueError(f"no topic {topic!r} on the broker")
    return parts


def expected_prices(values: Iterable[bytes | None], max_age_s: float) -> tuple[dict[str, dict[str, Any]], int, int]:
    """symbol -> expected latest price fields, plus (quotes read, quotes valid)."""
    validator = QuoteValidator(max_age_ns=int(max_age_s * NS_PER_SECOND))
    newest: dict[str, ValidQuote] = {}
    read = valid = 0
    for value in values:
        if value is None:
            continue
        read += 1
        quote = validator.validate(value)
        if isinstance(quote, Rejection):
            continue
        valid += 1
        held = newest.get(quote.symbol)
        if held is None or quote.timestamp_ns >= held.timestamp_ns:  # >=: a tie goes to the later record
            newest[quote.symbol] = quote
    return {symbol: _price_fields(q) for symbol, q in newest.items()}, read, valid


def _price_fields(q: ValidQuote) -> dict[str, Any]:
    mid = (q.bid + q.ask) / 2
    return {"bid": q.bid, "ask": q.ask, "mid": mid, "spread": q.ask - q.bid,
            "spread_bps": ((q.ask - q.bid) / mid * 10_000).quantize(Decimal("0.0001")),
            "bid_size": q.bid_size, "ask_size": q.ask_size, "timestamp": format_ns(q.timestamp_ns),
            "exchange": q.exchange}


def expected_pnl(records: Iterable[tuple[bytes | None, bytes | None]], prices: dict[str, dict[str, Any]],
                 expected: Expected, symbols: set[str] | None = None) -> None:
    """Fill ``expected.pnl`` and ``expected.totals`` from the positions topic, valued at the expected mids."""
    last: dict[bytes | None, bytes | None] = {}
    for key, value in records:
        last[key] = value  # compacted semantics: the last record of a key is the position
    for key, value in last.items():
        position = validate_position(key, value)
        if isinstance(position, Rejection) or position.qty == 0:
            continue
        if symbols is not None and position.symbol not in symbols:
            continue
        expected.positions_read += 1
        price = prices.get(position.symbol)
        if price is None:
            expected.positions_unpriced += 1
            expected.unpriced_accounts.add(position.account)
            continue
        pnl = ((price["mid"] - position.avg_entry_price) * position.qty).quantize(CENT, rounding=ROUND_HALF_EVEN)
        expected.pnl.setdefault(position.account, {})[position.symbol] = {
            "qty": position.qty, "avg_entry_price": position.avg_entry_price, "mark_price": price["mid"],
            "unrealized_pnl": pnl, "price_timestamp": price["timestamp"]}
        expected.totals[position.account] = expected.totals.get(position.account, Decimal("0.00")) + pnl


async def build_expected(bootstrap: str, symbols: set[str] | None, max_age_s: float, **security: Any) -> Expected:
    """Read ``quotes.raw`` and ``positions`` and compute what the pipeline must show."""
    keys = {s.encode() for s in symbols} if symbols else None
    quotes = await read_topic(bootstrap, QUOTES_RAW.name, keys, **security)
    expected = Expected()
    expected.prices, expected.quotes_read, expected.quotes_valid = expected_prices((v for _, v in quotes), max_age_s)
    positions = await read_topic(bootstrap, POSITIONS.name, **security)
    expected_pnl(positions, expected.prices, expected, symbols)
    return expected


def compare(where: str, subject: str, expected: dict[str, Any], actual: dict[str, Any] | None,
            fields: Iterable[str]) -> tuple[list[Mismatch], int]:
    """Field-by-field comparison (decimals by value); a missing actual is one mismatch."""
    fields = list(fields)
    if actual is None:
        return [Mismatch(where, subject, "*", "present", "absent")], len(fields)
    out = []
    for name in fields:
        want, got = expected.get(name), actual.get(name)
        if not _same(want, got):
            out.append(Mismatch(where, subject, name, str(want), str(got)))
    return out, len(fields)


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, Decimal):
        try:
            return got is not None and not isinstance(got, bool) and Decimal(str(got)) == want
        except ArithmeticError:
            return False
    return want == got


async def check_redis(redis: Redis, expected: Expected, report: CheckReport) -> None:
    """Diff ``price:{SYMBOL}``, ``pnl:{account}`` and ``pnl_total:{account}`` against the oracle."""
    for symbol, want in sorted(expected.prices.items()):
        _add(report, compare("redis", price_key(symbol), want, _json(await redis.get(price_key(symbol))),
                             PRICE_FIELDS))
    for account, positions in sorted(expected.pnl.items()):
        stored = await redis.hgetall(pnl_key(account))
        for symbol, want in sorted(positions.items()):
            _add(report, compare("redis", f"{pnl_key(account)}[{symbol}]", want,
                                 _json(stored.get(symbol.encode())), PNL_FIELDS))
        total = _json(await redis.get(pnl_total_key(account)))
        if account in expected.unpriced_accounts:
            continue  # some positions of the account are unpriced: the stored total includes their closes
        _add(report, compare("redis", pnl_total_key(account), {"total_unrealized": expected.totals[account]},
                             total, ["total_unrealized"]))


async def check_api(client: Any, expected: Expected, report: CheckReport) -> None:
    """Diff ``GET /api/v1/prices/{symbol}`` and the real-time P&L (an httpx client on the API) against the oracle."""
    for symbol, want in sorted(expected.prices.items()):
        response = await client.get(f"/api/v1/prices/{symbol}")
        _add(report, compare("api", f"/api/v1/prices/{symbol}", want,
                             response.json() if response.status_code == 200 else None, PRICE_FIELDS))
    for account, positions in sorted(expected.pnl.items()):
        response = await client.get("/api/v1/positions/pnl/realtime", params={"account": account})
        rows = {row["symbol"]: row for row in response.json().get("positions", [])} if response.is_success else {}
        for symbol, want in sorted(positions.items()):
            row = rows.get(symbol)
            actual = None if row is None else {"current_price": row.get("current_price"),
                                               "unrealized_pnl": row.get("unrealized_pnl")}
            _add(report, compare("api", f"pnl/realtime[{account}:{symbol}]",
                                 {"current_price": want["mark_price"], "unrealized_pnl": want["unrealized_pnl"]},
                                 actual, ["current_price", "unrealized_pnl"]))


async def check_tables(bootstrap: str, app_id: str, expected: Expected, report: CheckReport, **security: Any) -> None:
    """Diff the latest-price table (its changelog: the newest record per symbol) against the oracle."""
    topic = f"{app_id}-{LATEST_PRICE_TABLE}-changelog"
    keys = {s.encode() for s in expected.prices}
    newest: dict[bytes | None, bytes | None] = {}
    for key, value in await read_topic(bootstrap, topic, keys, **security):
        newest[key] = value
    for symbol, want in sorted(expected.prices.items()):
        _add(report, compare("table", f"{LATEST_PRICE_TABLE}[{symbol}]", want, _json(newest.get(symbol.encode())),
                             TABLE_FIELDS))


def _add(report: CheckReport, outcome: tuple[list[Mismatch], int]) -> None:
    mismatches, checked = outcome
    report.mismatches.extend(mismatches)
    report.values_checked += checked


def _json(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else None


async def check(bootstrap: str, redis: Redis, symbols: set[str] | None = None, max_age_s: float = 60.0,
                app_id: str | None = None, api_client: Any = None, **security: Any) -> CheckReport:
    """Build the expected state from the topics and diff Redis, the table (given ``app_id``) and the API."""
    report = CheckReport(await build_expected(bootstrap, symbols, max_age_s, **security))
    await check_redis(redis, report.expected, report)
    if app_id:
        await check_tables(bootstrap, app_id, report.expected, report, **security)
    if api_client is not None:
        await check_api(api_client, report.expected, report)
    return report
