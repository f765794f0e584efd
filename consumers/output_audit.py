"""Output audit: did every quote become exactly one price or dead letter, and every position's P&L arrive once?

Reads (committed records only) ``quotes.raw``, ``prices``, ``quotes.rejected`` and ``pnl`` for a set of symbols
once the pipeline has drained, and counts:

- **prices**: each quote of ``quotes.raw`` must leave exactly one record, a price (matched by symbol and quote
  time: every valid quote that is not older than the symbol's latest price becomes one) or a dead letter
  (matched by its source partition and offset). An output with no quote left to match is a *duplicate*; a quote
  with no output is a *gap*.
- **pnl**: a revaluation is a *duplicate* if the same position (account, symbol, quantity, entry price) was
  already valued at the same mark time; an open position of ``positions`` whose last revaluation is not of its
  quantity at its symbol's newest mid (the default mark) is a *gap*.

Under exactly once both counts are zero, whatever crashed; under at least once the duplicates count what a
crash sent twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from consumers.live_cut import TopicCursor
from domain.quotes import QuoteValidator, ValidQuote
from schemas.timestamps import format_ns
from schemas.topics import PNL, POSITIONS, PRICES, QUOTES_RAW, QUOTES_REJECTED

READ_DEADLINE_S = 120.0


@dataclass(frozen=True)
class OutputAudit:
    """What the audit counted (see the module doc)."""

    quotes_in: int
    prices_out: int
    rejected_out: int
    price_duplicates: int
    price_gaps: int
    positions: int
    pnl_out: int
    pnl_duplicates: int
    pnl_gaps: int

    @property
    def exact(self) -> bool:
        """Nothing twice, nothing missing."""
        return not (self.price_duplicates or self.price_gaps or self.pnl_duplicates or self.pnl_gaps)

    def summary(self) -> str:
        """One line."""
        return (f"{self.quotes_in} quotes -> {self.prices_out} prices + {self.rejected_out} dead letters: "
                f"{self.price_duplicates} duplicates, {self.price_gaps} gaps; {self.positions} positions -> "
                f"{self.pnl_out} revaluations: {self.pnl_duplicates} duplicates, {self.pnl_gaps} gaps")


async def audit_outputs(bootstrap: str, symbols: set[str], accounts: set[str], **security: Any) -> OutputAudit:
    """Audit the outputs of ``symbols`` (and the positions of ``accounts`` in them), read committed."""
    # Outputs before inputs: mid-stream, an output read must have its input read too (else it looks doubled);
    # an input without an output yet is a gap only once the pipeline has drained.
    keys = {s.encode() for s in symbols}
    position_keys = {f"{a}:{s}".encode() for a in accounts for s in symbols}
    pnl = await _read(bootstrap, PNL.name, position_keys, **security)
    prices = await _read(bootstrap, PRICES.name, keys, **security)
    rejected = await _read(bootstrap, QUOTES_REJECTED.name, None, **security)
    quotes = await _read(bootstrap, QUOTES_RAW.name, keys, **security)
    positions = await _read(bootstrap, POSITIONS.name, position_keys, **security)

    price_counts, rejected_counts = _price_counts(quotes, prices, rejected)
    pnl_out, pnl_duplicates, pnl_gaps, open_positions = _pnl_counts(positions, pnl, prices)
    return OutputAudit(
        quotes_in=len(quotes), prices_out=len(prices), rejected_out=rejected_counts,
        price_duplicates=price_counts[0], price_gaps=price_counts[1],
        positions=open_positions, pnl_out=pnl_out, pnl_duplicates=pnl_duplicates, pnl_gaps=pnl_gaps)


async def _read(bootstrap: str, topic: str, keys: set[bytes] | None, **security: Any) -> list[Any]:
    cursor = TopicCursor(bootstrap, topic, keys, **security)
    await cursor.start()
    return await cursor.read_to_end(READ_DEADLINE_S)


def _price_counts(quotes: list[Any], prices: list[Any], rejected: list[Any]) -> tuple[tuple[int, int], int]:
    """((duplicates, gaps), dead letters of these quotes) of quotes against prices and dead letters."""
    by_offset = {(r.partition, r.offset): r for r in quotes}
    letters: Counter[tuple[Any, Any]] = Counter()
    for record in rejected:
        letter = _json(record.value)
        if letter and letter.get("source_topic") == QUOTES_RAW.name:
            where = (letter.get("source_partition"), letter.get("source_offset"))
            if where in by_offset:
                letters[where] += 1
    duplicates = sum(n - 1 for n in letters.values())
    # The quotes left to become prices: every one without a dead letter, keyed as its price is.
    validator = QuoteValidator(max_age_ns=2**62)  # the age check was the stage's: its rejections are letters
    expected: Counter[tuple[str, str]] = Counter()
    for where, record in by_offset.items():
        if where in letters:
            continue
        quote = validator.validate(record.value) if record.value is not None else None
        if isinstance(quote, ValidQuote):
            expected[(quote.symbol, format_ns(quote.timestamp_ns))] += 1
    out: Counter[tuple[str, str]] = Counter()
    for record in prices:
        price = _json(record.value)
        if price:
            out[(price["symbol"], price["timestamp"])] += 1
    duplicates += sum((out - expected).values())
    gaps = sum((expected - out).values())
    return (duplicates, gaps), sum(letters.values())


def _pnl_counts(positions: list[Any], pnl: list[Any], prices: list[Any]) -> tuple[int, int, int, int]:
    """(revaluations, duplicates, gaps, open positions)."""
    latest_position: dict[bytes, dict[str, Any] | None] = {}
    for record in positions:  # keyed {account}:{symbol}: the newest value is the position
        latest_position[record.key] = _json(record.value)
    newest_price: dict[str, dict[str, Any]] = {}
    for record in prices:
        price = _json(record.value)
        if price and price["timestamp"] >= newest_price.get(price["symbol"], {}).get("timestamp", ""):
            newest_price[price["symbol"]] = price
    seen: Counter[tuple[Any, ...]] = Counter()
    last_valued: dict[bytes, dict[str, Any]] = {}
    for record in pnl:  # keyed like positions, so a position's revaluations are in the order they were sent
        value = _json(record.value)
        if value:
            seen[(value["account"], value["symbol"], value["qty"], value["avg_entry_price"],
                  value.get("price_timestamp"))] += 1
            last_valued[record.key] = value
    duplicates = sum(n - 1 for n in seen.values())
    open_positions = {k: v for k, v in latest_position.items() if v and Decimal(str(v.get("qty") or 0))}
    gaps = sum(1 for key, position in open_positions.items()
               if not _valued_at(last_valued.get(key), position, newest_price.get(position["symbol"])))
    return len(pnl), duplicates, gaps, len(open_positions)


def _valued_at(valued: dict[str, Any] | None, position: dict[str, Any], price: dict[str, Any] | None) -> bool:
    """The position's last revaluation is of its current quantity, at its symbol's newest mid (if priced)."""
    if valued is None:
        return False
    if Decimal(valued["qty"]) != Decimal(str(position["qty"])):
        return False
    return price is None or (valued.get("mark_price") is not None and
                             Decimal(valued["mark_price"]) == Decimal(price["mid"]))


def _json(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
