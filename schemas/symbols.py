"""Symbol normalisation: the one rule every entry point applies to ticker symbols."""

from __future__ import annotations

import re

# US equity tickers: letters, optionally a class suffix after '.' or '/', e.g. BRK.B.
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,9}([./][A-Z0-9]{1,4})?$")


def normalize_symbol(raw: object) -> str:
    """Return the canonical (upper-case, trimmed) symbol, or raise ValueError saying what is wrong."""
    if not isinstance(raw, str):
        raise ValueError(f"symbol must be a string, got {type(raw).__name__}")
    symbol = raw.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(f"invalid symbol {raw!r}: expected 1-10 letters/digits starting with a letter")
    return symbol


__all__ = [
    "SYMBOL_PATTERN",
    "normalize_symbol",
]
