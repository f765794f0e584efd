"""Per-session channel subscriptions with Alpaca's additive subscribe / subtractive unsubscribe rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from alpaca_feed.protocol import ProtocolError
from schemas.symbols import SYMBOL_PATTERN

FEEDS = ("iex", "sip", "delayed_sip", "test")
TEST_FEED = "test"
# The real test stream only ever carries this symbol.
TEST_SYMBOL = "FAKEPACA"
WILDCARD = "*"

# Channels a client may name in subscribe/unsubscribe, per feed.
STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds", "imbalances")
TEST_CHANNELS = ("trades", "quotes", "bars")
# Channels the server derives itself; naming them explicitly is refused with 410.
DERIVED_CHANNELS = ("corrections", "cancelErrors")

# The keys of a subscription ack, always all present (imbalances only when non-empty).
STOCK_ACK_KEYS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
TEST_ACK_KEYS = ("trades", "quotes", "bars")

# Symbols a session may hold on trades and quotes together, per feed (Alpaca's Basic plan: 30 on IEX;
# bars and the other channels are unlimited). A feed absent here has no cap.
DEFAULT_SYMBOL_LIMITS: dict[str, int] = {"iex": 30}
LIMITED_CHANNELS = ("trades", "quotes")
# Channels whose symbols the synthetic market simulates (imbalances are never generated).
SIMULATED_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")

# Data message type -> the subscription channel that receives it (corrections/cancels follow trades).
MESSAGE_CHANNELS: dict[str, str] = {
    "t": "trades",
    "q": "quotes",
    "b": "bars",
    "u": "updatedBars",
    "d": "dailyBars",
    "s": "statuses",
    "l": "lulds",
    "i": "imbalances",
    "c": "trades",
    "x": "trades",
}

# Ack channel name -> the stored channel it mirrors.
_ACK_SOURCES = {"corrections": "trades", "cancelErrors": "trades"}


def channel_for(message_type: object) -> str | None:
    """The subscription channel that carries data messages of this ``T``, or None if unknown."""
    return MESSAGE_CHANNELS.get(message_type) if isinstance(message_type, str) else None


def _valid_symbol(symbol: object) -> bool:
    return isinstance(symbol, str) and (symbol == WILDCARD or SYMBOL_PATTERN.fullmatch(symbol) is not None)


class Subscriptions:
    """The channel -> symbols set of one session (insertion-ordered, so acks list symbols stably)."""

    def __init__(self, feed: str, symbol_limit: int | None = None) -> None:
        self.feed = feed
        self.symbol_limit = symbol_limit
        self._channels = TEST_CHANNELS if feed == TEST_FEED else STOCK_CHANNELS
        self._symbols: dict[str, dict[str, None]] = {channel: {} for channel in self._channels}

    def parse_request(self, message: Mapping[str, Any]) -> dict[str, list[str]]:
        """Validate a subscribe/unsubscribe map and return its channel lists; nothing is changed.

        Raises ProtocolError(400) for malformed lists or symbols, 410 for channels this feed lacks.
        """
        request: dict[str, list[str]] = {}
        for key, value in message.items():
            if key == "action":
                continue
            if key not in self._channels:
                known = key in STOCK_CHANNELS or key in DERIVED_CHANNELS
                raise ProtocolError(410 if known else 400)
            if not isinstance(value, list) or not all(_valid_symbol(symbol) for symbol in value):
                raise ProtocolError(400)
            request[key] = value
        return request

    def add(self, request: Mapping[str, Iterable[str]]) -> None:
        """Subscribing is additive.

        Raises ProtocolError(405) and changes nothing when the trades and quotes symbols together
        would exceed ``symbol_limit`` (a ``*`` there exceeds any limit).
        """
        if self.symbol_limit is not None:
            limited: set[str] = set()
            for channel in LIMITED_CHANNELS:
                limited.update(self._symbols.get(channel, ()))
                limited.update(request.get(channel, ()))
            if WILDCARD in limited or len(limited) > self.symbol_limit:
                raise ProtocolError(405)
        for channel, symbols in request.items():
            self._symbols[channel].update(dict.fromkeys(symbols))

    def remove(self, request: Mapping[str, Iterable[str]]) -> None:
        """Unsubscribing removes exactly the listed symbols (``*`` removes only the wildcard)."""
        for channel, symbols in request.items():
            for symbol in symbols:
                self._symbols[channel].pop(symbol, None)

    def ack(self) -> dict[str, Any]:
        """The ``subscription`` control message listing the entire current set."""
        keys = TEST_ACK_KEYS if self.feed == TEST_FEED else STOCK_ACK_KEYS
        out: dict[str, Any] = {"T": "subscription"}
        for key in keys:
            out[key] = list(self._symbols[_ACK_SOURCES.get(key, key)])
        if self._symbols.get("imbalances"):
            out["imbalances"] = list(self._symbols["imbalances"])
        return out

    @property
    def active(self) -> bool:
        """Whether any channel has a symbol."""
        return any(self._symbols.values())

    def symbols(self, channel: str) -> list[str]:
        """Symbols currently subscribed on ``channel`` (corrections/cancelErrors mirror trades)."""
        return list(self._symbols.get(_ACK_SOURCES.get(channel, channel), ()))

    def wants(self, channel: str, symbol: str) -> bool:
        """Whether data for ``symbol`` on ``channel`` goes to this session."""
        chosen = self._symbols.get(channel)
        return chosen is not None and (symbol in chosen or WILDCARD in chosen)

    def covers(self, channel: str, symbols: Iterable[str]) -> bool:
        """Whether every one of ``symbols`` is delivered on ``channel`` (the wildcard covers all)."""
        chosen = self._symbols.get(_ACK_SOURCES.get(channel, channel))
        if chosen is None:
            return False
        return WILDCARD in chosen or all(symbol in chosen for symbol in symbols)

    def market_symbols(self, universe: Iterable[str]) -> set[str]:
        """Symbols the synthetic market must simulate for this session (any channel it generates).

        The wildcard expands to ``universe``; the test feed only ever carries FAKEPACA.
        """
        wanted: set[str] = set()
        for channel in SIMULATED_CHANNELS:
            chosen = self._symbols.get(channel)
            if chosen:
                wanted.update(universe if WILDCARD in chosen else chosen)
        if self.feed == TEST_FEED:
            return {TEST_SYMBOL} if (TEST_SYMBOL in wanted or self._has_wildcard()) else set()
        return wanted

    def _has_wildcard(self) -> bool:
        return any(WILDCARD in self._symbols[channel] for channel in ("trades", "quotes", "bars"))
