"""Consistency checker (``tickwire check``): the oracle the reliability tests trust.

It rebuilds, from the raw topics alone, what the pipeline must show, and diffs that against Redis,
the price stage's latest-price changelog and the API:

- **latest price per symbol**: among the quotes of ``quotes.raw`` that are valid (the documented
  rules, :class:`QuoteValidator`), the one with the newest exchange time (on a tie, the later
  offset) — stated as a maximum, not by re-running the processor's batch loop;
- **P&L per open position** (mark policy ``mid``): the last record of each ``positions`` key,
  valued at that expected mid, ``(mid - avg) * qty`` half-even to the cent; and each account's total.

Positions whose symbol has no expected live price are skipped (counted), not guessed.

The pipeline keeps consuming while the check runs, so the comparison is made at a **cut**: the offsets
the oracle read up to. A live value that differs is placed against the history of the symbol's price
(:mod:`consumers.live_cut`): one the topic produced before the cut (the live side is behind) or after it
(the live side moved on) is reported as such (``live_moved``), and the check reads on and compares again
at the new cut until it agrees or ``settle_s`` runs out. Only a value no cut explains is a real mismatch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from dataclasses import field as dataclass_field  # Mismatch has a member named field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from redis.asyncio import Redis

from consumers.live_cut import PriceHistory, PriceState, TopicCursor, same_value
from domain.positions import validate_position
from domain.quotes import QuoteValidator, Rejection, ValidQuote
from schemas.timestamps import NS_PER_SECOND, format_ns
from schemas.topics import (
    LATEST_PRICE_TABLE,
    POSITIONS,
    QUOTES_RAW,
    latest_price_changelog,
    pnl_key,
    pnl_total_key,
    price_key,
)

CENT = Decimal("0.01")
READ_DEADLINE_S = 60.0
SETTLE_POLL_S = 0.2  # between comparisons while the live side settles (a poll with a deadline)
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
    symbol: str = ""
    account: str = ""
    kind: str = ""  # "price", "pnl" or "total": how the live value is placed against the cut
    state: dict[str, Any] | None = dataclass_field(default=None, repr=False, compare=False)  # the whole live value
    live_moved: bool = False  # explained by the live side being before or after the cut, not a real difference
    note: str = ""

    def __str__(self) -> str:
        line = f"{self.where} {self.subject} {self.field}: expected {self.expected}, got {self.actual}"
        return f"{line} ({self.note})" if self.note else line


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
    cut: dict[str, dict[int, int]] = field(default_factory=dict)  # topic -> partition -> next offset compared at
    rounds: int = 1
    moved_records: int = 0  # quotes.raw records appended after the first cut while the check ran

    @property
    def ok(self) -> bool:
        """True when nothing differs."""
        return not self.mismatches

    @property
    def real_mismatches(self) -> list[Mismatch]:
        """Mismatches no cut explains: a live value the raw topics never led to."""
        return [m for m in self.mismatches if not m.live_moved]

    def cut_text(self) -> str:
        """``quotes.raw 0:120 1:98 ...; positions 0:4 ...``: where the comparison was made."""
        return "; ".join(f"{topic} " + " ".join(f"{p}:{o}" for p, o in sorted(parts.items()))
                         for topic, parts in self.cut.items())

    def summary(self) -> str:
        """One line: the figures a reliability report quotes."""
        e = self.expected
        return (f"quotes read {e.quotes_read} (valid {e.quotes_valid}), symbols {len(e.prices)}, positions "
                f"{e.positions_read} (unpriced {e.positions_unpriced}), values checked {self.values_checked}, "
                f"mismatches {len(self.mismatches)} (real {len(self.real_mismatches)})")


async def read_topic(bootstrap: str, topic: str, keys: set[bytes] | None = None,
                     deadline_s: float = READ_DEADLINE_S, **security: Any) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) of ``topic`` from its beginning to its end offsets now, per partition in
    offset order (``keys`` filters). Partition order is all that matters: records are keyed by symbol."""
    cursor = TopicCursor(bootstrap, topic, keys, **security)
    await cursor.start()
    try:
        return [(r.key, r.value) for r in await cursor.read_to_end(deadline_s)]
    finally:
        await cursor.stop()


class QuoteFold:
    """The latest valid quote per symbol, folded record by record, and every state it passed through."""

    def __init__(self, max_age_s: float) -> None:
        self.validator = QuoteValidator(max_age_ns=int(max_age_s * NS_PER_SECOND))
        self.newest: dict[str, ValidQuote] = {}
        self.history = PriceHistory()
        self.read = 0
        self.valid = 0

    def add(self, value: bytes | None, partition: int = 0, offset: int = 0) -> None:
        """One ``quotes.raw`` value."""
        if value is None:
            return
        self.read += 1
        quote = self.validator.validate(value)
        if isinstance(quote, Rejection):
            return
        self.valid += 1
        held = self.newest.get(quote.symbol)
        if held is None or quote.timestamp_ns >= held.timestamp_ns:  # >=: a tie goes to the later record
            self.newest[quote.symbol] = quote
            self.history.add(quote.symbol, PriceState(_price_fields(quote), partition, offset))

    def prices(self) -> dict[str, dict[str, Any]]:
        """symbol -> expected latest price fields now."""
        return {symbol: _price_fields(q) for symbol, q in self.newest.items()}

    def at_cut(self) -> dict[str, int]:
        """symbol -> index of its newest state in the history (the state at the current cut)."""
        return {symbol: len(states) - 1 for symbol, states in self.history.states.items()}


def expected_prices(values: Iterable[bytes | None], max_age_s: float) -> tuple[dict[str, dict[str, Any]], int, int]:
    """symbol -> expected latest price fields, plus (quotes read, quotes valid)."""
    fold = QuoteFold(max_age_s)
    for value in values:
        fold.add(value)
    return fold.prices(), fold.read, fold.valid


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


class Oracle:
    """Reads ``quotes.raw`` and ``positions`` incrementally and says what the pipeline must show at the cut."""

    def __init__(self, bootstrap: str, symbols: set[str] | None, max_age_s: float, **security: Any) -> None:
        keys = {s.encode() for s in symbols} if symbols else None
        self.symbols = symbols
        self.quotes = TopicCursor(bootstrap, QUOTES_RAW.name, keys, **security)
        self.positions = TopicCursor(bootstrap, POSITIONS.name, **security)
        self.fold = QuoteFold(max_age_s)
        self.last_positions: dict[bytes | None, bytes | None] = {}

    async def start(self) -> None:
        """Connect both cursors."""
        await self.quotes.start()
        try:
            await self.positions.start()
        except BaseException:
            await self.quotes.stop()
            raise

    async def stop(self) -> None:
        """Disconnect."""
        await self.quotes.stop()
        await self.positions.stop()

    async def advance(self) -> int:
        """Read both topics on to their ends (the new cut); returns how many quote records were new."""
        before = self.fold.read
        for record in await self.quotes.read_to_end():
            self.fold.add(record.value, record.partition, record.offset)
        for record in await self.positions.read_to_end():
            self.last_positions[record.key] = record.value  # compacted semantics: the last record is the position
        return self.fold.read - before

    def expected(self) -> Expected:
        """What the pipeline must show at the current cut."""
        expected = Expected(prices=self.fold.prices(), quotes_read=self.fold.read, quotes_valid=self.fold.valid)
        expected_pnl(list(self.last_positions.items()), expected.prices, expected, self.symbols)
        return expected

    @property
    def cut(self) -> dict[str, dict[int, int]]:
        """topic -> partition -> next offset: where the current expectation stops."""
        return {QUOTES_RAW.name: dict(self.quotes.cut), POSITIONS.name: dict(self.positions.cut)}


async def build_expected(bootstrap: str, symbols: set[str] | None, max_age_s: float, **security: Any) -> Expected:
    """Read ``quotes.raw`` and ``positions`` to their ends and compute what the pipeline must show."""
    oracle = Oracle(bootstrap, symbols, max_age_s, **security)
    await oracle.start()
    try:
        await oracle.advance()
        return oracle.expected()
    finally:
        await oracle.stop()


def compare(where: str, subject: str, expected: dict[str, Any], actual: dict[str, Any] | None,
            fields: Iterable[str], *, symbol: str = "", account: str = "", kind: str = "",
            ) -> tuple[list[Mismatch], int]:
    """Field-by-field comparison (decimals by value); a missing actual is one mismatch. ``about``: the
    mismatches' ``symbol``, ``account`` and ``kind``, for placing them against the cut."""
    fields = list(fields)
    if actual is None:
        return [Mismatch(where, subject, "*", "present", "absent", symbol, account, kind)], len(fields)
    out = []
    for name in fields:
        want, got = expected.get(name), actual.get(name)
        if not same_value(want, got):
            out.append(Mismatch(where, subject, name, str(want), str(got), symbol, account, kind, state=actual))
    return out, len(fields)


async def check_redis(redis: Redis, expected: Expected, report: CheckReport) -> None:
    """Diff ``price:{SYMBOL}``, ``pnl:{account}`` and ``pnl_total:{account}`` against the oracle."""
    for symbol, want in sorted(expected.prices.items()):
        _add(report, compare("redis", price_key(symbol), want, _json(await redis.get(price_key(symbol))),
                             PRICE_FIELDS, symbol=symbol, kind="price"))
    for account, positions in sorted(expected.pnl.items()):
        stored = await redis.hgetall(pnl_key(account))
        for symbol, want in sorted(positions.items()):
            _add(report, compare("redis", f"{pnl_key(account)}[{symbol}]", want,
                                 _json(stored.get(symbol.encode())), PNL_FIELDS, symbol=symbol, account=account,
                                 kind="pnl"))
        total = _json(await redis.get(pnl_total_key(account)))
        if account in expected.unpriced_accounts:
            continue  # some positions of the account are unpriced: the stored total includes their closes
        _add(report, compare("redis", pnl_total_key(account), {"total_unrealized": expected.totals[account]},
                             total, ["total_unrealized"], account=account, kind="total"))


async def check_api(client: Any, expected: Expected, report: CheckReport) -> None:
    """Diff ``GET /api/v1/prices/{symbol}`` and the real-time P&L (an httpx client on the API) against the oracle."""
    for symbol, want in sorted(expected.prices.items()):
        response = await client.get(f"/api/v1/prices/{symbol}")
        _add(report, compare("api", f"/api/v1/prices/{symbol}", want,
                             response.json() if response.status_code == 200 else None, PRICE_FIELDS,
                             symbol=symbol, kind="price"))
    for account, positions in sorted(expected.pnl.items()):
        response = await client.get("/api/v1/positions/pnl/realtime", params={"account": account})
        rows = {row["symbol"]: row for row in response.json().get("positions", [])} if response.is_success else {}
        for symbol, want in sorted(positions.items()):
            row = rows.get(symbol)
            actual = None if row is None else {"current_price": row.get("current_price"),
                                               "unrealized_pnl": row.get("unrealized_pnl")}
            _add(report, compare("api", f"pnl/realtime[{account}:{symbol}]",
                                 {"current_price": want["mark_price"], "unrealized_pnl": want["unrealized_pnl"]},
                                 actual, ["current_price", "unrealized_pnl"], symbol=symbol, account=account,
                                 kind="pnl"))


async def check_tables(bootstrap: str, app_id: str, expected: Expected, report: CheckReport, **security: Any) -> None:
    """Diff the latest-price table (its changelog: the newest record per symbol) against the oracle."""
    topic = latest_price_changelog(app_id)
    keys = {s.encode() for s in expected.prices}
    newest: dict[bytes | None, bytes | None] = {}
    for key, value in await read_topic(bootstrap, topic, keys, **security):
        newest[key] = value
    for symbol, want in sorted(expected.prices.items()):
        _add(report, compare("table", f"{LATEST_PRICE_TABLE}[{symbol}]", want, _json(newest.get(symbol.encode())),
                             TABLE_FIELDS, symbol=symbol, kind="price"))


def _add(report: CheckReport, outcome: tuple[list[Mismatch], int]) -> None:
    mismatches, checked = outcome
    report.mismatches.extend(mismatches)
    report.values_checked += checked


def _json(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else None


def place_against_cut(report: CheckReport, fold: QuoteFold, at_cut: dict[str, int]) -> None:
    """Mark each mismatch the live side's position explains (``live_moved``), with a note saying where it is.

    ``fold`` has read past the cut the report was made at; ``at_cut`` is each symbol's state index there.
    """
    placed: list[Mismatch] = []
    for m in report.mismatches:
        note = _place(m, report.expected, fold.history, at_cut) if m.state is not None else None
        placed.append(replace(m, live_moved=True, note=note) if note else m)
    moved_accounts = {m.account for m in placed if m.live_moved and m.kind == "pnl"}
    report.mismatches = [
        replace(m, live_moved=True, note="the account's positions are valued at prices off the cut")
        if m.kind == "total" and m.account in moved_accounts else m
        for m in placed
    ]


def _place(m: Mismatch, expected: Expected, history: PriceHistory, at_cut: dict[str, int]) -> str | None:
    states = history.states.get(m.symbol, [])
    cut_index = at_cut.get(m.symbol, -1)
    assert m.state is not None
    if m.kind == "price":
        fields = TABLE_FIELDS if m.where == "table" else PRICE_FIELDS
        index = history.position(m.symbol, m.state, fields)
    elif m.kind == "pnl":
        index = _valued_at(m, expected, history)
    else:
        return None
    if index is None or index == cut_index:
        return None
    state = states[index]
    quote = f"the quote at {QUOTES_RAW.name}[{state.partition}]@{state.offset}"
    if index < cut_index:
        return f"live is behind the cut: it shows {quote}, {cut_index - index} price(s) before the cut"
    return f"live moved past the cut: it shows {quote}, {index - cut_index} price(s) after the cut"


def _valued_at(m: Mismatch, expected: Expected, history: PriceHistory) -> int | None:
    """Index of the price state a live P&L value was valued at (its mark is that mid, its P&L follows), or None."""
    assert m.state is not None
    position = expected.pnl.get(m.account, {}).get(m.symbol)
    if position is None:
        return None
    if m.where == "redis" and not all(same_value(position[f], m.state.get(f)) for f in ("qty", "avg_entry_price")):
        return None  # a different position, not a different price
    mark = m.state.get("mark_price", m.state.get("current_price"))  # Redis names it mark_price, the API current_price
    mids = history.mids(m.symbol)
    for index in range(len(mids) - 1, -1, -1):
        if not same_value(mids[index], mark):
            continue
        pnl = ((mids[index] - position["avg_entry_price"]) * position["qty"]).quantize(CENT, rounding=ROUND_HALF_EVEN)
        return index if same_value(pnl, m.state.get("unrealized_pnl")) else None
    return None


async def check(bootstrap: str, redis: Redis, symbols: set[str] | None = None, max_age_s: float = 60.0,
                app_id: str | None = None, api_client: Any = None, settle_s: float = 0.0,
                **security: Any) -> CheckReport:
    """Build the expected state from the topics and diff Redis, the table (given ``app_id``) and the API, at a cut.

    While something differs and ``settle_s`` has not run out, read on to a new cut and compare again; the
    report's mismatches say which ones the live side's position (behind or past the cut) explains.
    """
    oracle = Oracle(bootstrap, symbols, max_age_s, **security)
    await oracle.start()
    try:
        await oracle.advance()
        first_read = oracle.fold.read
        deadline = time.monotonic() + settle_s
        rounds = 0
        while True:
            rounds += 1
            report = CheckReport(oracle.expected(), cut=oracle.cut, rounds=rounds)
            at_cut = oracle.fold.at_cut()
            await check_redis(redis, report.expected, report)
            if app_id:
                await check_tables(bootstrap, app_id, report.expected, report, **security)
            if api_client is not None:
                await check_api(api_client, report.expected, report)
            if report.ok:
                report.moved_records = oracle.fold.read - first_read
                return report
            await oracle.advance()  # where did the live side go? read past the cut, then place each value
            place_against_cut(report, oracle.fold, at_cut)
            report.moved_records = oracle.fold.read - first_read
            if time.monotonic() >= deadline:
                return report
            await asyncio.sleep(SETTLE_POLL_S)  # poll interval while settling; the deadline bounds it
    finally:
        await oracle.stop()
