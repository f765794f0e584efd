"""ResilientStockDataStream: alpaca-py's StockDataStream with tickwire's reconnect loop and subscriptions.

alpaca-py 0.44 (pinned) still does the protocol: connect, greeting, auth, the full subscribe message,
unsubscribe. This subclass replaces the parts users lose data to (reference: alpaca-stream-protocol.md §4):

- ``_run_forever``: our ReconnectPolicy instead of alpaca-py's 0.5-30 s backoff; every failure is
  classified (402/406/409 at auth, HTTP 429 at the handshake, drops) and reported in one line; 409
  does not end the stream; cancelling closes the socket (alpaca-py #643).
- ``_consume``: one receive time per frame, the whole frame handed to the observer (raw msgpack maps,
  nanosecond timestamps intact); no 5 s stop polling: stopping closes the socket, so it is immediate.
- :meth:`change_symbols`: (un)subscribe on the stream's own loop, without alpaca-py's blocking
  ``run_coroutine_threadsafe(...).result()`` that deadlocks there (alpaca-py #491).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack
import structlog
import websockets
from alpaca.data.live import StockDataStream

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
ADVICE = {
    402: "Alpaca refused the credentials: check ALPACA_API_KEY / ALPACA_SECRET_KEY",
    404: "authentication timed out",
    406: "another connection holds this account's Alpaca stream (one per account): another ingest or app "
         "uses the same key, or a dead session still holds the slot (up to ~90 s)",
    409: "this feed is not in the account's plan: use ALPACA_FEED=iex or upgrade the data plan",
    411: "the token lacks the market-data scope",
    429: "Alpaca rate-limited the connection attempts",
}
# alpaca-py's defaults plus a short close timeout: when a stop finds the client's queue full (1024 frames),
# the server cannot get its close frame through and the default 10 s (+10 s) wait would eat the stop budget.
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 180, "max_queue": 1024, "close_timeout": 1.0}
STREAM_CHANNELS = ("trades", "quotes", "bars", "dailyBars", "statuses")
# Alpaca's test stream offers only these; naming another channel there gets the whole subscribe refused (410).
TEST_STREAM_CHANNELS = ("trades", "quotes", "bars")


@dataclass(frozen=True)
class StreamFailure:
    """Why a connection attempt failed or a session ended."""

    kind: str  # "auth", "handshake", "closed", "network", "stall", "error"
    message: str
    code: int | None = None  # Alpaca error code at auth, or HTTP status at the handshake
    was_connected: bool = False  # a session had been established: its data may be missing now
    retry_after_s: float | None = None

    def describe(self) -> str:
        """One line for logs and the status detail."""
        code = f" ({self.code})" if self.code is not None else ""
        advice = ADVICE.get(self.code or 0)
        return f"{self.kind}{code}: {self.message}" + (f" - {advice}" if advice else "")


class StreamObserver(Protocol):
    """What the stream reports to the ingest. ``on_frame`` is the hot path and must not block or raise."""

    def on_frame(self, messages: list[Any], received_ns: int) -> None: ...

    def on_malformed(self, error: str) -> None: ...

    def on_connected(self) -> None: ...

    def on_disconnected(self, failure: StreamFailure) -> None: ...


async def _ignored(_: Any) -> None:
    """Registered as alpaca-py handler: the handler dicts only say what to subscribe; frames go to the observer."""


class ResilientStockDataStream(StockDataStream):
    """A StockDataStream that never gives up, backs off by policy and changes symbols without deadlock."""

    # alpaca-py leaves these unannotated (inferred as None); this subclass sets them before use.
    _stop_stream_event: asyncio.Event
    _ws: Any

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        url: str,
        policy: ReconnectPolicy,
        observer: StreamObserver,
        channels: Iterable[str] = STREAM_CHANNELS,
    ) -> None:
        super().__init__(api_key, secret_key, raw_data=True, url_override=url, websocket_params=WEBSOCKET_PARAMS)
        self.url = url
        self.policy = policy
        self.observer = observer
        self.channels = tuple(channels)
        self.connected = False
        self.sessions = 0  # successful connections
        self.next_attempt_in_s: float | None = None
        self.last_failure: StreamFailure | None = None
        self._forced_reason: str | None = None
        self._subscription_lock = asyncio.Lock()
        self._stop_stream_event = asyncio.Event()  # here, not in the run loop: a stop may come before it starts

    # --- subscriptions ------------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this stream subscribes (on every connect)."""
        return tuple(self._handlers[self.channels[0]])

    def register_symbols(self, symbols: Iterable[str]) -> None:
        """Set the symbols to subscribe before the stream runs (the first connect sends them)."""
        for channel in self.channels:
            self._handlers[channel].update(dict.fromkeys(symbols, _ignored))

    async def change_symbols(self, added: Iterable[str], removed: Iterable[str]) -> None:
        """Subscribe ``added`` and unsubscribe ``removed`` now if connected, else at the next connect."""
        added, removed = list(added), list(removed)
        async with self._subscription_lock:
            for channel in self.channels:
                handlers = self._handlers[channel]
                for symbol in added:
                    handlers[symbol] = _ignored
                for symbol in removed:
                    handlers.pop(symbol, None)
            if not (self._running and self._ws is not None):
                return  # the next connect sends the full set
            try:
                if added:
                    await self._send_subscribe_msg()  # alpaca-py always sends the full set
                for channel in self.channels if removed else ():
                    await self._send_unsubscribe_msg(channel, removed)
            except (websockets.WebSocketException, OSError) as exc:
                log.warning("subscription change not sent (socket closing); the reconnect sends the full set",
                            error=str(exc))

    async def _send_subscribe_msg(self) -> None:
        if self.symbols:  # a bare {"action": "subscribe"} means nothing; skip it
            await super()._send_subscribe_msg()

    # --- lifecycle ----------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop: close the socket now (alpaca-py would notice a stop only at its next 5 s receive poll)."""
        self._should_run = False
        self._stop_stream_event.set()
        await self._close_quietly()

    async def force_reconnect(self, reason: str) -> None:
        """Drop the current session (e.g. it went mute); the run loop reconnects by policy."""
        if self._ws is not None:
            self._forced_reason = reason
            await self._close_quietly()

    async def serve(self) -> None:
        """Connect and stream until :meth:`shutdown` (the FeedStream entry point)."""
        await self._run_forever()

    async def _run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()  # type: ignore[assignment]  # alpaca-py infers None
        try:
            while self._should_run:
                failure = await self._one_session()
                if not self._should_run:
                    break
                self.last_failure = failure
                self.observer.on_disconnected(failure)
                delay = self.policy.next_delay()
                if failure.retry_after_s:
                    delay = max(delay, min(failure.retry_after_s, self.policy.cap))
                self.next_attempt_in_s = delay
                log.warning("alpaca stream down, reconnecting", reason=failure.describe(),
                            attempt=self.policy.attempts, retry_in_s=round(delay, 2), url=self.url,
                            gave_up_counting=self.policy.exhausted)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_stream_event.wait(), delay)  # a stop cuts the wait short
                self.next_attempt_in_s = None
        finally:
            await self._close_quietly()  # also on cancellation: an open socket would hold the account's slot
            self.connected = False

    async def _one_session(self) -> StreamFailure:
        established = False
        try:
            await self._start_ws()
            async with self._subscription_lock:
                await self._send_subscribe_msg()
                self._running = True
            established = self.connected = True
            self.sessions += 1
            self.policy.record_success()
            self.observer.on_connected()
            await self._consume()
            return StreamFailure("closed", "stopped", was_connected=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._classify(exc, established)
        finally:
            self.connected = False
            self._running = False
            await self._close_quietly()

    def _classify(self, exc: Exception, established: bool) -> StreamFailure:
        forced, self._forced_reason = self._forced_reason, None
        if forced is not None:
            return StreamFailure("stall", forced, was_connected=established)
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, websockets.InvalidHandshake) and status:
            headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None)
            return StreamFailure("handshake", f"server rejected WebSocket connection: HTTP {status}", status,
                                 retry_after_s=_retry_after(headers))
        if isinstance(exc, ValueError) and not established:
            text = str(exc)
            return StreamFailure("auth", text, AUTH_ERROR_CODES.get(text))
        if isinstance(exc, websockets.ConnectionClosed):
            return StreamFailure("closed", str(exc) or "connection closed", was_connected=established)
        if isinstance(exc, (OSError, TimeoutError, websockets.WebSocketException)):
            return StreamFailure("network", f"{type(exc).__name__}: {exc}", was_connected=established)
        log.exception("unexpected error in the alpaca stream")
        return StreamFailure("error", f"{type(exc).__name__}: {exc}", was_connected=established)

    async def _consume(self) -> bool:
        ws = self._ws
        observer = self.observer
        while self._should_run:
            frame = await ws.recv()
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
        return False

    async def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.close()


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
