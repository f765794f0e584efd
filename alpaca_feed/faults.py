"""Fault injection for the local Alpaca feed: the failures a client must survive, on demand.

``server.faults`` is a :class:`FeedFaults`. Every fault can be triggered from a test (call the method),
from a fault script (``tickwire feed serve --fault-script FILE``) or over HTTP
(``POST /_control/faults/{name}`` with the same arguments as a JSON object); the last two go through
:meth:`FeedFaults.apply`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgpack
import orjson
from aiohttp import WSCloseCode

from alpaca_feed.market import BAD_QUOTE_KINDS, MarketModel
from alpaca_feed.protocol import ERROR_MESSAGES, Encoding, encode_frame
from alpaca_feed.statuses import DEFAULT_HALT_REASON, DEFAULT_RESUME_REASON, HALT, RESUME, status_message
from schemas.timestamps import format_ns_trimmed, now_ns
from tickwire.errors import TickwireError

if TYPE_CHECKING:
    from alpaca_feed.hub import FeedHub
    from alpaca_feed.session import FeedSession

log = logging.getLogger(__name__)

MALFORMED_KINDS = ("bad_msgpack", "text_in_msgpack_session", "string_timestamp", "missing_field")
# How long drop() waits for the dropped sessions to end.
DROP_WAIT_SECONDS = 5.0
# The fault names apply() accepts (scripts, control endpoint); clear() is there to undo them all.
FAULT_NAMES = (
    "drop",
    "mute",
    "unmute",
    "reject_auth",
    "reject_handshakes",
    "slow_client",
    "send_malformed",
    "bad_quote",
    "halt",
    "resume",
    "burst",
    "clear",
)


class FaultError(TickwireError, ValueError):
    """A fault request with an unknown name or bad arguments."""


class FeedFaults:
    """Scriptable failures of the feed: drops, silence, refusals, slow clients, bad data, halts.

    Args:
        hub: the server's session registry (faults act on its sessions and state).
        model: the synthetic market (bad quotes and statuses are stamped on its per-symbol clock).
        publish: how data messages reach subscribers (the server's path, so history records them).
    """

    def __init__(
        self,
        hub: FeedHub,
        model: MarketModel,
        publish: Callable[[list[dict[str, Any]]], int],
    ) -> None:
        self._hub = hub
        self._model = model
        self._publish = publish
        self._default_max_pending = hub.max_pending_bytes
        self._handshake_status = 0
        self._handshake_until = 0.0
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Set by the server once its synthetic generator runs (burst multiplies its rate).
        self.burst_target: Callable[[float, float], None] | None = None

    # --- connections --------------------------------------------------------------------------

    async def drop(self, close_frame: bool = True) -> int:
        """End every live session, with a close frame (1011) or by aborting TCP with none.

        Returns how many sessions were dropped, once they have ended.
        """
        sessions = list(self._hub.sessions)
        for session in sessions:
            if close_frame:
                session.close(WSCloseCode.INTERNAL_ERROR, "fault: drop", urgent=True)
            else:
                session.abort()
        if sessions:
            await asyncio.wait([session.finished for session in sessions], timeout=DROP_WAIT_SECONDS)
        log.info("fault: dropped %d sessions (close frame: %s)", len(sessions), close_frame)
        return len(sessions)

    def mute(self, seconds: float | None = None) -> None:
        """Send no data messages for ``seconds`` (None: until ``unmute()``).

        Sockets stay open, pings are answered and control messages (acks, errors) still flow. The
        market keeps moving meanwhile, so REST history has what the stream did not deliver.
        """
        if seconds is not None and seconds <= 0:
            raise FaultError("mute seconds must be positive (or None for until unmute)")
        self._hub.muted_until = math.inf if seconds is None else time.monotonic() + seconds
        self._schedule_notify("mute", seconds)
        self._hub.notify()
        log.info("fault: data muted for %s", "ever" if seconds is None else f"{seconds}s")

    @property
    def muted(self) -> bool:
        """True while data messages are being withheld."""
        return self._hub.muted

    def unmute(self) -> None:
        """End a mute."""
        self._hub.muted_until = 0.0
        self._schedule_notify("mute", None)
        self._hub.notify()

    def reject_auth(self, code: int = 406, count: int = 1) -> None:
        """Refuse the next ``count`` auth attempts with Alpaca error ``code`` (e.g. 406, 402, 409).

        The reply text and what happens to the socket are Alpaca's: 402/409 close it, 406 leaves it
        open and unauthenticated until the auth deadline.
        """
        if code not in ERROR_MESSAGES:
            raise FaultError(f"unknown Alpaca error code {code}; known: {sorted(ERROR_MESSAGES)}")
        if count < 1:
            raise FaultError("count must be >= 1")
        self._hub.forced_auth_refusals.extend([code] * count)

    def reject_handshakes(self, status: int = 429, seconds: float = 5.0) -> None:
        """Answer every WebSocket upgrade with HTTP ``status`` for ``seconds`` (alpaca-py: InvalidStatus)."""
        if not 400 <= status <= 599:
            raise FaultError("status must be an HTTP error status (400-599)")
        if seconds <= 0:
            raise FaultError("seconds must be positive")
        self._handshake_status = status
        self._handshake_until = time.monotonic() + seconds
        self._schedule_notify("handshakes", seconds)

    def handshake_refusal(self) -> int | None:
        """The HTTP status to refuse an upgrade with now, or None (used by the server)."""
        if self._handshake_status and time.monotonic() < self._handshake_until:
            return self._handshake_status
        return None

    def slow_client(self, max_pending_bytes: int) -> None:
        """Lower every session's backlog bound (and new ones'): the next backlog over it gets 407."""
        if max_pending_bytes < 1:
            raise FaultError("max_pending_bytes must be >= 1")
        self._hub.max_pending_bytes = max_pending_bytes
        for session in self._hub.sessions:
            session.max_pending_bytes = max_pending_bytes

    # --- bad data -----------------------------------------------------------------------------

    def send_malformed(self, kind: str = "bad_msgpack", symbol: str | None = None) -> int:
        """Send one malformed frame to every authenticated session; returns how many got it.

        Kinds: ``bad_msgpack`` (undecodable bytes in the session's encoding), ``text_in_msgpack_session``
        (a JSON text frame to a msgpack session; a binary msgpack frame to a JSON one),
        ``string_timestamp`` (a quote whose ``t`` has the wrong type: an RFC 3339 string in msgpack, an
        integer in JSON) and ``missing_field`` (a quote without ``bp``). Quotes are for ``symbol``, by
        default the first symbol the session has subscribed to quotes of.
        """
        if kind not in MALFORMED_KINDS:
            raise FaultError(f"unknown malformed kind {kind!r}; known: {', '.join(MALFORMED_KINDS)}")
        sessions = self._hub.authenticated_sessions()
        for session in sessions:
            data, text = self._malformed_frame(kind, session, symbol or self._symbol_of(session))
            session.send_raw(data, text=text)
        log.info("fault: sent a %s frame to %d sessions", kind, len(sessions))
        return len(sessions)

    def _symbol_of(self, session: FeedSession) -> str:
        for channel in ("quotes", "trades", "bars"):
            for symbol in session.subscriptions.symbols(channel):
                return self._hub.universe[0] if symbol == "*" else symbol
        return self._hub.universe[0]

    def _malformed_frame(self, kind: str, session: FeedSession, symbol: str) -> tuple[bytes, bool]:
        """The frame bytes and whether it goes out as a text frame."""
        msgpack_session = session.encoding is Encoding.MSGPACK
        quote = self._model.current_quote(symbol, now_ns())  # sane, so only the fault is wrong
        if kind == "bad_msgpack":
            # 0xc1 is the one byte msgpack never uses; the JSON equivalent is a truncated array.
            return (b"\x91\xc1", False) if msgpack_session else (b'[{"T":"q","S":', True)
        if kind == "text_in_msgpack_session":
            other = Encoding.JSON if msgpack_session else Encoding.MSGPACK
            return encode_frame([quote], other), msgpack_session
        if kind == "string_timestamp":
            if msgpack_session:
                quote["t"] = format_ns_trimmed(quote["t"])
                return msgpack.packb([quote]), False
            return orjson.dumps([quote]), True  # integer ns: the wrong type for a JSON client
        del quote["bp"]  # missing_field: bp is required by alpaca-py's Quote and tickwire's validator
        return encode_frame([quote], session.encoding), not msgpack_session

    def bad_quote(self, symbol: str, kind: str) -> dict[str, Any]:
        """Publish one quote of ``kind`` (crossed, locked, zero, negative, out_of_order) for ``symbol``.

        Returns the message as published (``t`` in integer ns).
        """
        if kind not in BAD_QUOTE_KINDS:
            raise FaultError(f"unknown bad quote kind {kind!r}; known: {', '.join(BAD_QUOTE_KINDS)}")
        quote = self._model.bad_quote(symbol, kind, now_ns())
        self._publish([quote])
        return quote

    # --- trading status -----------------------------------------------------------------------

    def halt(self, symbol: str, reason: str = DEFAULT_HALT_REASON) -> dict[str, Any]:
        """Publish a UTP trading halt (``sc: H``) for ``symbol``; the synthetic market then stops
        quoting and trading it until ``resume``. Returns the status message."""
        message = status_message(symbol, HALT, reason, self._model.next_timestamp(symbol, now_ns()))
        self._hub.halted.add(symbol)
        self._publish([message])
        return message

    def resume(self, symbol: str, reason: str = DEFAULT_RESUME_REASON) -> dict[str, Any]:
        """Publish a trading resumption (``sc: T``) for ``symbol`` and let its quotes flow again."""
        message = status_message(symbol, RESUME, reason, self._model.next_timestamp(symbol, now_ns()))
        self._hub.halted.discard(symbol)
        self._publish([message])
        return message

    # --- rates --------------------------------------------------------------------------------

    def burst(self, factor: float = 10.0, seconds: float = 1.0) -> None:
        """Multiply the synthetic rate by ``factor`` for ``seconds`` (like the open's rush)."""
        if self.burst_target is None:
            raise FaultError("burst needs the synthetic market (rate > 0)")
        if factor <= 0 or seconds <= 0:
            raise FaultError("factor and seconds must be positive")
        self.burst_target(factor, seconds)

    # --- undo ---------------------------------------------------------------------------------

    def clear(self) -> None:
        """Undo every standing fault: mute, pending auth refusals, handshake refusals, slow-client bound,
        halts (without publishing resumptions)."""
        self.unmute()
        self._hub.forced_auth_refusals.clear()
        self._handshake_status = 0
        self._hub.halted.clear()
        self._hub.max_pending_bytes = self._default_max_pending
        for session in self._hub.sessions:
            session.max_pending_bytes = self._default_max_pending

    def _schedule_notify(self, name: str, seconds: float | None) -> None:
        # The end of a timed fault is an event: waiters on server.wait_until re-check then.
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        if seconds is not None:
            self._timers[name] = asyncio.get_running_loop().call_later(seconds, self._hub.notify)

    # --- by name ------------------------------------------------------------------------------

    async def apply(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run the fault called ``name`` with keyword ``arguments`` (a fault script line, a control
        request). Raises FaultError for unknown names or arguments; returns the fault's result."""
        if name not in FAULT_NAMES:
            raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        method = getattr(self, name)
        arguments = dict(arguments or {})
        try:
            inspect.signature(method).bind(**arguments)
        except TypeError as exc:
            raise FaultError(f"bad arguments for {name}: {exc}") from None
        result = method(**arguments)
        if inspect.isawaitable(result):
            result = await result
        return result

