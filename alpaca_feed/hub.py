"""State shared by all sessions: credentials and connection slots, data fan-out, change notification."""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from alpaca_feed.protocol import Encoding, assemble_frames, encode_message
from alpaca_feed.subscriptions import TEST_FEED, TEST_SYMBOL, channel_for

if TYPE_CHECKING:
    from alpaca_feed.session import FeedSession

# Symbols the synthetic market simulates for a "*" subscription.
DEFAULT_UNIVERSE = ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "SPY", "QQQ", "AMD")


class FeedHub:
    """Registry of live sessions; routes data messages to the sessions subscribed to them."""

    def __init__(
        self,
        *,
        key: str | None = None,
        secret: str | None = None,
        connections_per_key: int | None = 1,
        plan_feeds: Iterable[str] | None = None,
        universe: Sequence[str] = DEFAULT_UNIVERSE,
        max_pending_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._key = key
        self._secret = secret
        self._connections_per_key = connections_per_key
        self._plan_feeds = None if plan_feeds is None else frozenset(plan_feeds)
        self._universe = tuple(universe)
        self.max_pending_bytes = max_pending_bytes  # backlog bound given to new sessions
        self.sessions: set[FeedSession] = set()
        self.connection_count = 0
        self.auth_rejections = 0  # every refused auth, whatever the reason
        self.handshake_rejections = 0  # upgrades answered with an HTTP error status (a fault)
        # Fault state, set through FeedFaults: forced auth refusals, data mute, halted symbols.
        self.forced_auth_refusals: collections.deque[int] = collections.deque()
        self.muted_until = 0.0  # time.monotonic() deadline; math.inf = until unmuted
        self.halted: set[str] = set()
        self._market_symbols: set[str] | None = None
        self._changed = asyncio.Event()

    # --- session lifecycle --------------------------------------------------------------------

    def connection_attempted(self) -> None:
        """Count an upgrade attempt on a valid feed path (before the handshake completes)."""
        self.connection_count += 1
        self.notify()

    def session_opened(self, session: FeedSession) -> None:
        """A session was greeted."""
        self.sessions.add(session)
        self.notify()

    def session_closed(self, session: FeedSession) -> None:
        """A session ended; its connection slot and subscriptions are released."""
        self.sessions.discard(session)
        self._market_symbols = None
        self.notify()

    def authenticate(self, session: FeedSession, key: str, secret: str) -> int | None:
        """Check an auth request: None when accepted, else the Alpaca error code to send."""
        refusal = self._auth_refusal(session, key, secret)
        if refusal is not None:
            self.auth_rejections += 1
            self.notify()
        return refusal

    def _auth_refusal(self, session: FeedSession, key: str, secret: str) -> int | None:
        if self.forced_auth_refusals:
            return self.forced_auth_refusals.popleft()
        if (self._key is not None and key != self._key) or (self._secret is not None and secret != self._secret):
            return 402
        if self._plan_feeds is not None and session.feed not in self._plan_feeds:
            return 409
        if self._connections_per_key is not None:
            holders = [
                other
                for other in self.sessions
                if other is not session and other.authenticated and other.key == key and other.feed == session.feed
            ]
            if len(holders) >= self._connections_per_key:
                return 406
        return None

    def session_authenticated(self, session: FeedSession) -> None:
        """A session completed auth."""
        self.notify()

    def subscriptions_changed(self) -> None:
        """Some session's subscription set changed."""
        self._market_symbols = None
        self.notify()

    def has_subscribers(self) -> bool:
        """Whether some authenticated session subscribes to anything."""
        return any(session.subscriptions.active for session in self.authenticated_sessions())

    async def wait_for_backlogs(self, below_bytes: int) -> None:
        """Return once every session has at most ``below_bytes`` queued (slow readers pace the caller)."""
        for session in list(self.sessions):
            await session.wait_pending_below(below_bytes)

    def authenticated_sessions(self) -> list[FeedSession]:
        """Sessions that may receive data."""
        return [session for session in self.sessions if session.authenticated]

    @property
    def universe(self) -> tuple[str, ...]:
        """Symbols a ``*`` subscription covers."""
        return self._universe

    # --- data ---------------------------------------------------------------------------------

    def market_symbols(self) -> set[str]:
        """Symbols the synthetic market must simulate now (union over authenticated sessions)."""
        if self._market_symbols is None:
            wanted: set[str] = set()
            for session in self.authenticated_sessions():
                wanted |= session.subscriptions.market_symbols(self._universe)
            self._market_symbols = wanted
        return self._market_symbols

    @property
    def muted(self) -> bool:
        """True while a mute fault silences data messages."""
        return self.muted_until > 0 and (math.isinf(self.muted_until) or time.monotonic() < self.muted_until)

    def handshake_rejected(self) -> None:
        """Count an upgrade refused with an HTTP error status."""
        self.handshake_rejections += 1
        self.notify()

    def publish(self, messages: Sequence[Mapping[str, Any]], *, synthetic: bool = False) -> int:
        """Send data messages to every authenticated session subscribed to them, one batch per session.

        Each message is encoded at most once per encoding. ``synthetic`` data reaches test-feed
        sessions only for FAKEPACA, like the real test stream. While muted nothing is sent.
        Returns how many sessions got data.
        """
        if self.muted:
            return 0
        routed = [(channel_for(message.get("T")), message.get("S")) for message in messages]
        encoded: dict[Encoding, list[bytes | None]] = {}
        reached = 0
        for session in self.authenticated_sessions():
            only_test_symbol = synthetic and session.feed == TEST_FEED
            wants = session.subscriptions.wants
            picks = [
                index
                for index, (channel, symbol) in enumerate(routed)
                if channel is not None
                and isinstance(symbol, str)
                and (not only_test_symbol or symbol == TEST_SYMBOL)
                and wants(channel, symbol)
            ]
            if not picks:
                continue
            cache = encoded.setdefault(session.encoding, [None] * len(messages))
            parts: list[bytes] = []
            for index in picks:
                part = cache[index]
                if part is None:
                    part = cache[index] = encode_message(messages[index], session.encoding)
                parts.append(part)
            session.send_frames(assemble_frames(parts, session.encoding, session.max_frame_bytes))
            reached += 1
        return reached

    # --- waiting ------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake every ``wait_until`` waiter to re-check its predicate."""
        # Wake every waiter, then give later waiters a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, re-checking on every state change (wrap in a timeout)."""
        while True:
            changed = self._changed
            if predicate():
                return
            await changed.wait()
