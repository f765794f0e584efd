"""PositionValidator: a ``positions`` record (key ``{account}:{symbol}``, JSON or tombstone) -> Position."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from domain.quotes import Rejection
from schemas.events import Position, RejectReason
from schemas.symbols import normalize_symbol
from schemas.timestamps import format_ns, now_ns, parse_ns
from schemas.topics import DEFAULT_ACCOUNT, split_position_key

ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_decimal(value: Any, name: str) -> Decimal:
    """A decimal string or number -> Decimal; ValueError naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{name} must be a decimal string, got {value!r}")
    try:
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def normalize_account(raw: Any) -> str:
    """Account ids: 1-64 letters, digits, '_', '.', '-' (they appear in keys and channel names)."""
    if not isinstance(raw, str) or not ACCOUNT_PATTERN.fullmatch(raw):
        raise ValueError(f"invalid account {raw!r}: expected 1-64 letters, digits, '_', '.' or '-'")
    return raw


def validate_position(key: bytes | None, value: bytes | None) -> Position | Rejection:
    """Parse a ``positions`` record; a tombstone (null value) or qty 0 is a closed position."""
    key_text = key.decode("utf-8", "replace") if key else ""
    key_account, key_symbol = split_position_key(key_text) if key_text else (DEFAULT_ACCOUNT, "")
    if value is None:
        try:
            return Position(account=normalize_account(key_account), symbol=normalize_symbol(key_symbol),
                            qty=Decimal(0), avg_entry_price=Decimal(0), updated_at=format_ns(now_ns()))
        except ValueError as exc:
            return Rejection(RejectReason.INVALID_FIELD, f"tombstone with unusable key {key_text!r}: {exc}", None, None)
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectReason.MALFORMED, f"not JSON: {exc}", None, value.decode("utf-8", "replace"))
    if not isinstance(raw, dict):
        return Rejection(RejectReason.MALFORMED, f"expected a JSON object, got {type(raw).__name__}", None, raw)
    missing = [f for f in ("qty", "avg_entry_price") if raw.get(f) is None]
    if not raw.get("symbol") and not key_symbol:
        missing.insert(0, "symbol")
    if missing:
        return Rejection(RejectReason.MISSING_FIELD, f"missing field(s): {', '.join(missing)}", raw.get("symbol"), raw)
    try:
        symbol = normalize_symbol(raw.get("symbol") or key_symbol)
        account = normalize_account(raw.get("account") or key_account)
        if key_symbol and normalize_symbol(key_symbol) != symbol:
            raise ValueError(f"key symbol {key_symbol!r} differs from value symbol {symbol!r}")
        qty = parse_decimal(raw["qty"], "qty")
        avg = parse_decimal(raw["avg_entry_price"], "avg_entry_price")
        if avg < 0:
            raise ValueError(f"avg_entry_price must not be negative, got {avg}")
        updated_at = format_ns(parse_ns(raw["updated_at"])) if raw.get("updated_at") else format_ns(now_ns())
    except ValueError as exc:
        return Rejection(RejectReason.INVALID_FIELD, str(exc), raw.get("symbol") if isinstance(
            raw.get("symbol"), str) else None, raw)
    return Position(account=account, symbol=symbol, qty=qty, avg_entry_price=avg, updated_at=updated_at)
