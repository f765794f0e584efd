"""ResilientDataStream: an alpaca-py data stream under tickwire's reconnect loop and subscriptions.

alpaca-py 0.44 (pinned) still does the protocol: connect, greeting, auth, the full subscribe message,
unsubscribe (driven through producers/alpaca_adapter.py). This class adds what users lose data to
(reference: alpaca-stream-protocol.md §4):

- :meth:`serve`: our ReconnectPolicy, as tenacity's wait, instead of alpaca-py's 0.5-30 s backoff;
  every failure is classified (402/406/409 at auth, HTTP 429 at the handshake, drops) and reported in
  one line; 409 does not end the stream; cancelling it is the stop, and closes the socket (alpaca-py #643).
- the receive loop: one receive time per frame, the whole frame handed to the observer (raw msgpack maps,
  nanosecond timestamps intact); no 5 s stop polling: a cancel ends it at once.
- :meth:`change_symbols`: (un)subscribe on the stream's own loop, without alpaca-py's blocking
  ``run_coroutine_threadsafe(...).result()`` that deadlocks there (alpaca-py #491).

It knows no feed: the source passes the alpaca-py stream (stock, crypto ...), its channels and advice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import msgpack
import structlog
import websockets
from alpaca.data.live.websocket import DataStream
from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from producers.alpaca_adapter import AlpacaSocket
from producers.reconnect_policy import ReconnectPolicy

log = structlog.get_logger(__name__)

# alpaca-py raises ValueError(<server msg>) for an error reply to auth; the text names the Alpaca code.
AUTH_ERROR_CODES = {
    "auth failed": 402,
    "already authenticated": 403,
    "auth timeout": 404,
    "connection limit exceeded": 406,
    "insufficient subscription": 409,
    "insufficient scope": 411,
}
# What each refusal means on any Alpaca data stream; a source adds or overrides its own (stocks: 409).
ADVICE = {
    402: "Alpaca refused the credentials: check ALPACA_API_KEY / ALPACA_SECRET_KEY",
    404: "authentication timed out",
    406: "another connection holds this account's Alpaca stream (one per account): another ingest or app "
         "uses the same key, or a dead session still holds the slot (up to ~90 s)",
    409: "this feed is not in the account's plan",
    411: "the token lacks the market-data scope",
    429: "Alpaca rate-limited the connection attempts",
}
# alpaca-py's defaults plus a short close timeout: when a stop finds the client's queue full (1024 frames),
# the server cannot get its close frame through and the default 10 s (+10 s) wait would eat the stop budget.
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 180, "max_queue": 1024, "close_timeout": 1.0}


@dataclass(frozen=True)
class StreamFailure:
    """Why a connection attempt failed or a session ended."""

    kind: str  # "auth", "handshake", "closed", "network", "stall", "error"
    message: str
    code: int | None = None  # Alpaca error code at auth, or HTTP status at the handshake
    was_connected: bool = False  # a session had been established: its data may be missing now
    retry_after_s: float | None = None
    advice: str | None = None  # what to do about it, when the code says

    def describe(self) -> str:
        """One line for logs and the status detail."""
        code = f" ({self.code})" if self.code is not None else ""
        return f"{self.kind}{code}: {self.message}" + (f" - {self.advice}" if self.advice else "")


class StreamObserver(Protocol):
    """What the stream reports to the ingest. ``on_frame`` is the hot path and must not block or raise."""

    def on_frame(self, messages: list[Any], received_ns: int) -> None: ...

    def on_malformed(self, error: str) -> None: ...

    def on_connected(self) -> None: ...

    def on_disconnected(self, failure: StreamFailure) -> None: ...


class ResilientDataStream:
    """An alpaca-py data stream that never gives up, backs off by policy and changes symbols without deadlock."""

    def __init__(
        self,
        stream: DataStream,
        *,
        url: str,
        policy: ReconnectPolicy,
        observer: StreamObserver,
        channels: Iterable[str],
        advice: Mapping[int, str] = ADVICE,
    ) -> None:
        self.socket = AlpacaSocket(stream)
        self.url = url
        self.policy = policy
        self.observer = observer
        self.channels = tuple(channels)
        self.advice = advice
        self.connected = False
        self.sessions = 0  # successful connections
        self.next_attempt_in_s: float | None = None
        self.last_failure: StreamFailure | None = None
        self._symbols: dict[str, None] = {}  # insertion-ordered set
        self._subscribed = False  # the current session has sent its subscribe: changes go out at once
        self._forced_reason: str | None = None
        self._subscription_lock = asyncio.Lock()

    # --- subscriptions ------------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this stream subscribes (on every connect)."""
        return tuple(self._symbols)

    def register_symbols(self, symbols: Iterable[str]) -> None:
        """Set the symbols to subscribe before the stream runs (the first connect sends them)."""
        self._symbols.update(dict.fromkeys(symbols))

    async def change_symbols(self, added: Iterable[str], removed: Iterable[str]) -> None:
        """Subscribe ``added`` and unsubscribe ``removed`` now if connected, else at the next connect."""
        added, removed = list(added), list(removed)
        async with self._subscription_lock:
            self._symbols.update(dict.fromkeys(added))
            for symbol in removed:
                self._symbols.pop(symbol, None)
            if not (self._subscribed and self.socket.is_open):
                return  # the next connect sends the full set
            try:
                if added:
                    await self.socket.subscribe(self.channels, self._symbols)  # alpaca-py sends the full set
                if removed:
                    await self.socket.unsubscribe(self.channels, removed)
            except (websockets.WebSocketException, OSError) as exc:
                log.warning("subscription change not sent (socket closing); the reconnect sends the full set",
                            error=str(exc))

    # --- lifecycle ----------------------------------------------------------------------------

    async def force_reconnect(self, reason: str) -> None:
        """Drop the current session (e.g. it went mute); :meth:`serve` reconnects by policy."""
        if self.socket.is_open:
            self._forced_reason = reason
            await self._close_quietly()

    async def serve(self) -> None:
        """Connect and stream until cancelled: after every failure, wait as the policy says and connect
        again. Cancelling (the stop) closes the socket at once, also during a wait or a connect."""
        # Every session ends in a failure to retry; only an exception (the cancel, a bug) ends serve().
        reconnecting = AsyncRetrying(retry=retry_if_result(lambda _: True), wait=self._backoff,
                                     before_sleep=self._report, sleep=self._pause)
        try:
            await reconnecting(self._session)
        finally:
            await self._close_quietly()  # an open socket would hold the account's one slot
            self.connected = False

    async def _session(self) -> StreamFailure:
        """One connection, subscribed and streaming, until it fails (reported to the observer)."""
        failure = await self._one_session()
        self.last_failure = failure
        self.observer.on_disconnected(failure)
        return failure

    def _backoff(self, state: RetryCallState) -> float:
        """The policy's next delay (one more failure counted), at least what a 429's Retry-After asks."""
        failure = self.last_failure
        delay = self.policy.next_delay()
        if failure is not None and failure.retry_after_s:
            delay = max(delay, min(failure.retry_after_s, self.policy.cap))
        self.next_attempt_in_s = delay
        return delay

    def _report(self, state: RetryCallState) -> None:
        failure = self.last_failure
        log.warning("alpaca stream down, reconnecting", reason=failure.describe() if failure else None,
                    attempt=self.policy.attempts, retry_in_s=round(self.next_attempt_in_s or 0.0, 2),
                    url=self.url, gave_up_counting=self.policy.exhausted)

    async def _pause(self, delay: float) -> None:
        try:
            await asyncio.sleep(delay)  # the policy's backoff before the next attempt
        finally:
            self.next_attempt_in_s = None

    async def _one_session(self) -> StreamFailure:
        established = False
        try:
            receive = await self.socket.connect()
            async with self._subscription_lock:
                await self.socket.subscribe(self.channels, self._symbols)
                self._subscribed = True
            established = self.connected = True
            self.sessions += 1
            self.policy.record_success()
            self.observer.on_connected()
            await self._receive(receive)  # returns never: the socket's closing raises
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._classify(exc, established)
        finally:
            self.connected = False
            self._subscribed = False
            await self._close_quietly()

    def _classify(self, exc: Exception, established: bool) -> StreamFailure:
        forced, self._forced_reason = self._forced_reason, None
        if forced is not None:
            return StreamFailure("stall", forced, was_connected=established)
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, websockets.InvalidHandshake) and status:
            headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None)
            return StreamFailure("handshake", f"server rejected WebSocket connection: HTTP {status}", status,
                                 retry_after_s=_retry_after(headers), advice=self.advice.get(status))
        if isinstance(exc, ValueError) and not established:
            text = str(exc)
            code = AUTH_ERROR_CODES.get(text)
            return StreamFailure("auth", text, code, advice=self.advice.get(code or 0))
        if isinstance(exc, websockets.ConnectionClosed):
            return StreamFailure("closed", str(exc) or "connection closed", was_connected=established)
        if isinstance(exc, (OSError, TimeoutError, websockets.WebSocketException)):
            return StreamFailure("network", f"{type(exc).__name__}: {exc}", was_connected=established)
        log.exception("unexpected error in the alpaca stream")
        return StreamFailure("error", f"{type(exc).__name__}: {exc}", was_connected=established)

    async def _receive(self, receive: Callable[[], Awaitable[bytes]]) -> NoReturn:
        """The hot path: frames until the socket closes (a drop, a forced reconnect) or a cancel."""
        observer = self.observer
        while True:
            frame = await receive()
            received = time.time_ns()
            try:
                messages = msgpack.unpackb(frame)
            except Exception as exc:  # a text frame, bad bytes: keep the socket, like alpaca-py
                observer.on_malformed(f"undecodable frame ({type(exc).__name__}: {exc})")
                continue
            if type(messages) is not list:
                observer.on_malformed(f"frame is not an array: {type(messages).__name__}")
                continue
            try:
                observer.on_frame(messages, received)
            except Exception:  # a bug on the hot path must cost this frame, not the session (and a gap)
                log.exception("frame handling failed; frame skipped")
                observer.on_malformed("frame handling failed")

    async def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.socket.close()


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
