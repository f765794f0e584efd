"""Reads what the stages left in Redis, in the live namespace or a replay run's.

The price stage's state is per symbol: each section reads one kind of it, and ``tickwire diff`` compares
sections field by field. The P&L stage's is per account (:func:`read_pnl`): each position's valuation and the
account's total. :data:`SECTIONS_BY_STAGE` says which state a run of each stage leaves.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Protocol

import orjson
from redis.asyncio import Redis

from schemas.topics import namespaced, pnl_key, pnl_total_key, price_key, symbol_stats_key

SymbolState = dict[str, str | None]  # field -> value as text (None: absent)

PRICE_FIELDS = ("mid", "bid", "ask", "spread", "spread_bps", "bid_size", "ask_size", "timestamp", "exchange")


class StateSection(Protocol):
    """One kind of per-symbol state in Redis."""

    name: str

    async def read(self, redis: Redis, namespace: str, symbols: list[str]) -> dict[str, SymbolState]:
        """Each symbol's fields (every symbol gets an entry, with None for what is absent)."""
        ...

    def key_patterns(self, namespace: str) -> list[str]:
        """SCAN patterns of this section's keys (to find which symbols a namespace holds)."""
        ...

    def symbol_of(self, key: str, namespace: str) -> str:
        """The symbol a matching key belongs to."""
        ...


class PriceSection:
    """The latest price (``price:{SYMBOL}``): every field of the snapshot."""

    name = "price"

    async def read(self, redis: Redis, namespace: str, symbols: list[str]) -> dict[str, SymbolState]:
        """Each symbol's price fields, all None when it has no price."""
        values = await redis.mget([namespaced(price_key(s), namespace) for s in symbols]) if symbols else []
        out: dict[str, SymbolState] = {}
        for symbol, raw in zip(symbols, values, strict=True):
            stored = orjson.loads(raw) if raw else {}
            out[symbol] = {f: None if stored.get(f) is None else str(stored[f]) for f in PRICE_FIELDS}
        return out

    def key_patterns(self, namespace: str) -> list[str]:
        """``price:*`` in the namespace."""
        return [namespaced(price_key("*"), namespace)]

    def symbol_of(self, key: str, namespace: str) -> str:
        """The symbol after the key's prefix."""
        return key.removeprefix(namespaced(price_key(""), namespace))


class CountsSection:
    """Quotes accepted and rejected (in total and by reason) per symbol."""

    name = "count"

    async def read(self, redis: Redis, namespace: str, symbols: list[str]) -> dict[str, SymbolState]:
        """``accepted``, ``rejected`` and ``rejected.{reason}`` (absent counters are 0)."""
        pipe = redis.pipeline(transaction=False)
        for symbol in symbols:
            pipe.hgetall(namespaced(symbol_stats_key(symbol), namespace))
        out: dict[str, SymbolState] = {}
        for symbol, counters in zip(symbols, await pipe.execute(), strict=True):
            fields = {k.decode(): int(v) for k, v in counters.items()}
            reasons = {k: v for k, v in fields.items() if k.startswith("rejected.")}
            state: SymbolState = {"accepted": str(fields.get("accepted", 0)), "rejected": str(sum(reasons.values()))}
            state.update({k: str(v) for k, v in sorted(reasons.items())})
            out[symbol] = state
        return out

    def key_patterns(self, namespace: str) -> list[str]:
        """The per-symbol stats hashes in the namespace."""
        return [namespaced(symbol_stats_key("*"), namespace)]

    def symbol_of(self, key: str, namespace: str) -> str:
        """The symbol after the key's prefix."""
        return key.removeprefix(namespaced(symbol_stats_key(""), namespace))


SECTIONS: list[StateSection] = [PriceSection(), CountsSection()]
SECTIONS_BY_STAGE: dict[str, list[StateSection]] = {"price": SECTIONS, "pnl": []}  # the P&L's: read_pnl

PNL_FIELDS = ("qty", "avg_entry_price", "mark_price", "unrealized_pnl", "price_source", "price_timestamp")
PNL_SECTION = "pnl"  # a position's fields, subject ``{account}:{symbol}``
TOTAL_SECTION = "pnl_total"  # an account's total and open positions, subject ``{account}``


async def pnl_accounts(redis: Redis, namespace: str) -> set[str]:
    """Every account with valued positions in the namespace."""
    prefix = namespaced(pnl_key(""), namespace)
    return {key.decode().removeprefix(prefix) async for key in redis.scan_iter(match=prefix + "*", count=1000)}


async def read_pnl(redis: Redis, namespace: str, accounts: list[str], symbols: set[str] | None = None
                   ) -> dict[str, dict[str, SymbolState]]:
    """subject -> section -> fields: each position's valuation (``{account}:{symbol}``, section ``pnl``; fields
    that change with the clock, ``updated_at``, are left out) and each account's total (``{account}``, section
    ``pnl_total``). With ``symbols``, only those positions, and the total is theirs (the stored total covers
    every position of the account)."""
    pipe = redis.pipeline(transaction=False)
    for account in accounts:
        pipe.hgetall(namespaced(pnl_key(account), namespace))
        pipe.get(namespaced(pnl_total_key(account), namespace))
    replies = await pipe.execute()
    out: dict[str, dict[str, SymbolState]] = {}
    for index, account in enumerate(accounts):
        book, total = replies[2 * index], replies[2 * index + 1]
        kept = {}
        for field, raw in book.items():
            symbol = field.decode()
            if symbols is None or symbol in symbols:
                stored = orjson.loads(raw)
                kept[symbol] = stored
                out[f"{account}:{symbol}"] = {PNL_SECTION: {f: _text_or_none(stored.get(f)) for f in PNL_FIELDS}}
        if symbols is None:
            stored_total = orjson.loads(total) if total else {}
            state: SymbolState = {"total_unrealized": _text_or_none(stored_total.get("total_unrealized")),
                                  "positions": _text_or_none(stored_total.get("positions"))}
        else:
            figures = [Decimal(v["unrealized_pnl"]) for v in kept.values() if v.get("unrealized_pnl") is not None]
            state = {"total_unrealized": str(sum(figures, Decimal("0.00"))), "positions": str(len(kept))}
        out[account] = {TOTAL_SECTION: state}
    return out


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


async def symbols_in(redis: Redis, namespace: str, sections: Iterable[StateSection] = SECTIONS) -> set[str]:
    """Every symbol some section has state for in the namespace."""
    found: set[str] = set()
    for section in sections:
        for pattern in section.key_patterns(namespace):
            async for key in redis.scan_iter(match=pattern, count=1000):
                found.add(section.symbol_of(key.decode(), namespace))
    return found


async def read_state(
    redis: Redis, namespace: str, symbols: list[str], sections: Iterable[StateSection] = SECTIONS
) -> dict[str, dict[str, SymbolState]]:
    """symbol -> section name -> fields."""
    out: dict[str, dict[str, SymbolState]] = {s: {} for s in symbols}
    for section in sections:
        for symbol, state in (await section.read(redis, namespace, symbols)).items():
            out[symbol][section.name] = state
    return out
