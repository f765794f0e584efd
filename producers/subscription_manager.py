"""SubscriptionManager: which symbols the stream carries, by reference counting the sources that want them."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from schemas.events import SubscriptionRequest
from schemas.symbols import normalize_symbol
from tickwire.errors import TickwireError

log = structlog.get_logger(__name__)

CONFIG_SOURCE = "config"  # TICKWIRE_SYMBOLS


@dataclass(frozen=True)
class SubscriptionChange:
    """What the stream must do after a request: subscribe ``added``, unsubscribe ``removed``."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


class SubscriptionLimitError(TickwireError, ValueError):
    """A symbol is wanted but the feed's symbol limit is reached; it waits until a slot frees up."""


class SubscriptionManager:
    """A symbol is subscribed while at least one source (``config``, ``api``, ``positions`` …) wants it.

    Requests are idempotent per (symbol, source), so replaying the control topic from the beginning
    rebuilds the same set. At most ``max_symbols`` are active (Alpaca's IEX plan streams 30); symbols
    wanted beyond that are *pending*, in the order their requests arrived (the control topic orders
    requests per symbol only), and take the next free slot.
    """

    def __init__(self, max_symbols: int) -> None:
        if max_symbols < 1:
            raise ValueError("max_symbols must be >= 1")
        self.max_symbols = max_symbols
        self._wanted: dict[str, set[str]] = {}  # insertion order = request order
        self._active: dict[str, None] = {}

    @property
    def active(self) -> tuple[str, ...]:
        """Symbols the stream should be subscribed to, in the order they got their slot."""
        return tuple(self._active)

    @property
    def pending(self) -> tuple[str, ...]:
        """Wanted symbols that do not fit under the symbol limit."""
        return tuple(s for s in self._wanted if s not in self._active)

    def sources(self, symbol: str) -> frozenset[str]:
        """Who currently wants ``symbol``."""
        return frozenset(self._wanted.get(symbol, ()))

    def want(self, symbol: str, source: str) -> SubscriptionChange:
        """``source`` wants ``symbol`` streamed. Raises SubscriptionLimitError if it has to wait for a slot."""
        symbol = normalize_symbol(symbol)
        self._wanted.setdefault(symbol, set()).add(source)
        if symbol in self._active:
            return SubscriptionChange()
        if len(self._active) >= self.max_symbols:
            raise SubscriptionLimitError(
                f"symbol limit reached ({self.max_symbols}, TICKWIRE_MAX_SYMBOLS): {symbol} (wanted by "
                f"{source}) waits until another symbol is released"
            )
        self._active[symbol] = None
        return SubscriptionChange(added=(symbol,))

    def release(self, symbol: str, source: str) -> SubscriptionChange:
        """``source`` no longer wants ``symbol``; it is unsubscribed when nobody else does."""
        symbol = normalize_symbol(symbol)
        sources = self._wanted.get(symbol)
        if sources is None:
            return SubscriptionChange()
        sources.discard(source)
        if sources:
            return SubscriptionChange()
        del self._wanted[symbol]
        if symbol not in self._active:
            return SubscriptionChange()
        del self._active[symbol]
        promoted = self._fill_free_slots()
        return SubscriptionChange(added=promoted, removed=(symbol,))

    def apply(self, request: SubscriptionRequest) -> SubscriptionChange:
        """Apply a control-topic request (raises ValueError for a bad symbol, SubscriptionLimitError)."""
        if request.action == "subscribe":
            return self.want(request.symbol, request.source)
        return self.release(request.symbol, request.source)

    def _fill_free_slots(self) -> tuple[str, ...]:
        promoted = []
        for symbol in self._wanted:
            if len(self._active) >= self.max_symbols:
                break
            if symbol not in self._active:
                self._active[symbol] = None
                promoted.append(symbol)
        if promoted:
            log.info("symbols take freed subscription slots", symbols=promoted)
        return tuple(promoted)
