"""Text from Redis replies: clients made without ``decode_responses`` return bytes, typed ``bytes | str``."""

from __future__ import annotations


def as_text(value: bytes | str) -> str:
    """``value`` as text (UTF-8), whichever way the client was made."""
    return value.decode() if isinstance(value, bytes) else value
