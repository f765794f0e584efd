"""One client connection: the greeting -> auth -> subscribe state machine and its outbound queue.

All sends go through one bounded queue drained by a single writer task, so control replies and data
keep their order, a slow client never blocks the shared market generator, and only one task ever
writes to the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from alpaca_feed.protocol import (
    CLOSING_AUTH_REFUSALS,
    COMPRESSED_FRAME_BYTES,
    ERROR_MESSAGES,
    MAX_FRAME_BYTES,
    Encoding,
    ProtocolError,
    authenticated_message,
    close_code_for,
    connected_message,
    decode_client_message,
    encode_frame,
    error_message,
)
from alpaca_feed.subscriptions import Subscriptions

if TYPE_CHECKING:
    from alpaca_feed.hub import FeedHub

log = logging.getLogger(__name__)

# Outbound backlog per session before the client is dropped as slow (Alpaca does the same, with 407).
DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024
# How long a finished session waits for its writer to flush a close before cancelling it.
_WRITER_GRACE_SECONDS = 2.0


class SessionState(enum.Enum):
    """Where a connection is in Alpaca's session flow."""

    CONNECTED = "connected"  # greeted, waiting for a successful auth
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


class _Close:
    """Queue item: send a close frame with this code, then stop writing."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class _Frame:
    """Queue item: a pre-built frame sent with an explicit opcode (fault injection only)."""

    def __init__(self, data: bytes, text: bool) -> None:
        self.data = data
        self.text = text


class FeedSession:
    """Serves one WebSocket connection on ``/v2/{feed}``."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        feed: str,
        encoding: Encoding,
        hub: FeedHub,
        auth_timeout: float,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        user_agent: str = "",
        remote: str | None = None,
        transport: asyncio.Transport | None = None,
        symbol_limit: int | None = None,
    ) -> None:
        self.feed = feed
        self.encoding = encoding
        self.user_agent = user_agent
        self.remote = remote
        self.state = SessionState.CONNECTED
        self.key: str | None = None
        self.subscriptions = Subscriptions(feed, symbol_limit)
        self._ws = ws
        self._hub = hub
        self._auth_timeout = auth_timeout
        self._transport = transport
        # Outbound backlog bound; public so a fault can lower it on a live session.
        self.max_pending_bytes = max_pending_bytes
        self.max_frame_bytes = COMPRESSED_FRAME_BYTES if ws.compress else MAX_FRAME_BYTES
        self._queue: collections.deque[bytes | _Frame | _Close] = collections.deque()
        self._pending_bytes = 0
        self._wakeup = asyncio.Event()
        self._drained: asyncio.Event | None = None  # set once the backlog falls to _drain_below
        self._drain_below = 0
        self._closing = False  # a close is queued: drop every later send
        self._stopping = False  # the connection is gone: the writer should exit
        self.finished = asyncio.get_running_loop().create_future()

    @property
    def authenticated(self) -> bool:
        """True once auth succeeded and until the connection ends."""
        return self.state is SessionState.AUTHENTICATED

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet, then process client messages until the connection closes."""
        loop = asyncio.get_running_loop()
        writer = asyncio.create_task(self._write_loop(), name=f"feed-writer-{id(self):x}")
        deadline = loop.call_later(self._auth_timeout, self._on_auth_deadline)
        self._hub.session_opened(self)
        try:
            self.send_control(connected_message())
            async for message in self._ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_message(message.data)
                elif message.type is WSMsgType.ERROR:
                    log.debug("feed session %s: websocket error %r", self.remote, message.data)
                    break
        finally:
            deadline.cancel()
            self.state = SessionState.CLOSED
            self._hub.session_closed(self)
            await self._stop_writer(writer)
            if not self.finished.done():
                self.finished.set_result(None)

    async def _stop_writer(self, writer: asyncio.Task[None]) -> None:
        self._stopping = True
        self._signal_drained()
        self._wakeup.set()
        done, _ = await asyncio.wait({writer}, timeout=_WRITER_GRACE_SECONDS)
        if not done:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    # --- outbound -----------------------------------------------------------------------------

    def send_control(self, message: dict[str, Any]) -> None:
        """Queue a control message; it always travels alone in its frame."""
        self._enqueue([encode_frame([message], self.encoding)])

    def send_frames(self, frames: Iterable[bytes]) -> None:
        """Queue already-encoded data frames in order (drops the client with 407 if it falls behind)."""
        self._enqueue(list(frames))

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for this client and not yet written."""
        return self._pending_bytes

    async def wait_pending_below(self, limit: int) -> None:
        """Return once at most ``limit`` bytes are queued (or the session has ended)."""
        while self._pending_bytes > limit and not self._stopping and not self._closing:
            self._drained = asyncio.Event()
            self._drain_below = limit
            await self._drained.wait()

    def _signal_drained(self) -> None:
        if self._drained is not None and (self._pending_bytes <= self._drain_below or self._stopping):
            self._drained.set()
            self._drained = None

    def send_raw(self, data: bytes, *, text: bool) -> None:
        """Queue one frame exactly as given, as a text or binary frame whatever the session's encoding."""
        if self._closing or self._stopping:
            return
        self._queue.append(_Frame(data, text))
        self._wakeup.set()

    def abort(self) -> None:
        """Drop the TCP connection at once, with no close frame (the client sees 1006)."""
        self._abandon()
        if self._transport is not None:
            self._transport.abort()

    def close(self, code: int = WSCloseCode.OK, reason: str = "", *, urgent: bool = False) -> None:
        """Queue a close frame after what is already queued (``urgent`` discards the backlog first)."""
        if self._closing:
            return
        if urgent:
            self._discard_backlog()
        self._closing = True
        self._queue.append(_Close(code, reason))
        self._wakeup.set()

    def _enqueue(self, frames: list[bytes]) -> None:
        if self._closing or self._stopping or not frames:
            return
        size = sum(len(frame) for frame in frames)
        if self._pending_bytes + size > self.max_pending_bytes:
            # Alpaca buffers a bounded amount per client, then reports a slow client and disconnects.
            log.warning("feed session %s: slow client, %d bytes pending", self.remote, self._pending_bytes)
            self._discard_backlog()
            refusal = encode_frame([error_message(407)], self.encoding)
            self._pending_bytes = len(refusal)
            self._queue.append(refusal)
            self.close(WSCloseCode.POLICY_VIOLATION, "slow client")
            return
        self._pending_bytes += size
        self._queue.extend(frames)
        self._wakeup.set()

    def _discard_backlog(self) -> None:
        self._queue.clear()
        self._pending_bytes = 0

    async def _write_loop(self) -> None:
        ws = self._ws
        text = self.encoding is Encoding.JSON
        try:
            while not self._stopping:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                item = self._queue.popleft()
                if isinstance(item, _Close):
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                if isinstance(item, _Frame):
                    await ws.send_frame(item.data, WSMsgType.TEXT if item.text else WSMsgType.BINARY)
                    continue
                self._pending_bytes -= len(item)
                if text:
                    await ws.send_frame(item, WSMsgType.TEXT)
                else:
                    await ws.send_bytes(item)
                if self._drained is not None:
                    self._signal_drained()
        except ConnectionError as exc:
            # The peer vanished mid-send; the reader side notices and ends the session.
            log.debug("feed session %s: send failed: %r", self.remote, exc)
            self._abandon()
        except Exception:
            log.exception("feed session %s: writer failed", self.remote)
            self._abandon()
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.INTERNAL_ERROR)

    def _abandon(self) -> None:
        # Nothing will drain the queue any more: stop accepting frames.
        self._closing = True
        self._discard_backlog()
        self._signal_drained()

    # --- inbound ------------------------------------------------------------------------------

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = decode_client_message(data)
            action = message.get("action") if isinstance(message, dict) else None
            if action == "auth":
                self._on_auth(message)
            elif action in ("subscribe", "unsubscribe"):
                self._on_subscription(action, message)
            else:
                raise ProtocolError(400)
        except ProtocolError as exc:
            self.send_control(error_message(exc.code))
        except Exception:  # a server bug: Alpaca answers "internal error" and keeps the session
            log.exception("feed session %s: failed to handle a client message", self.remote)
            self.send_control(error_message(500))

    def _on_auth(self, message: dict[str, Any]) -> None:
        if self.state is SessionState.AUTHENTICATED:
            raise ProtocolError(403)
        key, secret = message.get("key"), message.get("secret")
        if not isinstance(key, str) or not isinstance(secret, str):
            raise ProtocolError(400)
        refusal = self._hub.authenticate(self, key, secret)
        if refusal is not None:
            self.send_control(error_message(refusal))
            if refusal in CLOSING_AUTH_REFUSALS:
                self.close(close_code_for(refusal), ERROR_MESSAGES[refusal])
            # Otherwise (406) the socket stays open unauthenticated until the auth deadline closes it.
        else:
            self.state = SessionState.AUTHENTICATED
            self.key = key
            self.send_control(authenticated_message())
            self._hub.session_authenticated(self)

    def _on_subscription(self, action: str, message: dict[str, Any]) -> None:
        if self.state is not SessionState.AUTHENTICATED:
            raise ProtocolError(401)
        request = self.subscriptions.parse_request(message)  # validates everything before changing
        if action == "subscribe":
            self.subscriptions.add(request)
        else:
            self.subscriptions.remove(request)
        self.send_control(self.subscriptions.ack())
        self._hub.subscriptions_changed()

    def _on_auth_deadline(self) -> None:
        if self.state is SessionState.CONNECTED:
            self.send_control(error_message(404))
            self.close(WSCloseCode.POLICY_VIOLATION, "auth timeout")
