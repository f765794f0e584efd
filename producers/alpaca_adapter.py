"""The one place tickwire touches alpaca-py's private members (alpaca-py 0.44, pinned), and why each.

alpaca-py does the protocol: the WebSocket handshake with its headers, the greeting, authentication and
its error replies, the subscribe and unsubscribe messages; and the REST requests. Its public stream API
is ``run()`` (which calls ``asyncio.run`` itself and blocks), ``stop()``/``stop_ws()``, ``close()`` and
``subscribe_*``/``unsubscribe_*`` with one handler per symbol. The ingest needs what that API does not
offer, so :class:`AlpacaSocket` drives a ``DataStream`` (stock, crypto, ...) through these members:

- ``_start_ws()``: connect, greeting and auth as one step, on the caller's event loop. The public
  ``run()`` owns its loop and its reconnects (0.5-30 s, not configurable; it gives up on 409): the ingest
  reconnects by its own ReconnectPolicy and classifies every failure (producers/resilient_stream.py).
- ``_ws``: the socket, to receive whole frames. alpaca-py's receive loop (``_consume``) awaits a handler
  coroutine per message, polls for a stop every 5 s and keeps subscription acks and errors to itself;
  the ingest's hot path takes one ``recv()`` per frame and hands the decoded frame over as a list.
- ``_handlers`` with ``_send_subscribe_msg()`` and ``_send_unsubscribe_msg()``: alpaca-py's subscribe
  message is built from its handler table (the full set, on every call). The public ``subscribe_*`` /
  ``unsubscribe_*`` wait on ``run_coroutine_threadsafe(...).result()``, which deadlocks when called on
  the stream's own loop (alpaca-py #491).
- ``RESTClient._session``: requests has no default timeout and alpaca-py sets none nor takes one; a hung
  request would pin the backfill's worker thread (and process exit) forever.

Nothing else in tickwire reads an underscore name of alpaca-py; a new alpaca-py version is checked here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, TypeVar

from alpaca.common.rest import RESTClient
from alpaca.data.live.websocket import DataStream
from requests import Session

REST_TIMEOUT_S = 10.0
C = TypeVar("C", bound=RESTClient)


async def _ignored(_: Any) -> None:
    """The handler alpaca-py's table holds: the table only says what to subscribe; frames bypass it."""


class AlpacaSocket:
    """One alpaca-py ``DataStream``'s socket, driven from the caller's loop (one session at a time)."""

    def __init__(self, stream: DataStream) -> None:
        self.stream = stream

    @property
    def is_open(self) -> bool:
        """True from :meth:`connect` until :meth:`close` (or a failed connect)."""
        return self.stream._ws is not None

    async def connect(self) -> Callable[[], Awaitable[bytes]]:
        """Connect, read the greeting and authenticate (alpaca-py raises ValueError with the server's
        message on an auth error); returns the socket's ``recv``, bound once for the whole session."""
        await self.stream._start_ws()
        ws: Any = self.stream._ws
        recv: Callable[[], Awaitable[bytes]] = ws.recv
        return recv

    async def subscribe(self, channels: Iterable[str], symbols: Collection[str]) -> None:
        """Subscribe ``symbols`` on ``channels``: alpaca-py sends the full set (nothing when it is empty)."""
        handlers = self.stream._handlers
        for channel in channels:
            handlers[channel] = dict.fromkeys(symbols, _ignored)
        if symbols:  # a bare {"action": "subscribe"} means nothing
            await self.stream._send_subscribe_msg()

    async def unsubscribe(self, channels: Iterable[str], symbols: Collection[str]) -> None:
        """Unsubscribe ``symbols`` from ``channels`` (one message per channel, as alpaca-py sends it)."""
        handlers = self.stream._handlers
        for channel in channels:
            for symbol in symbols:
                handlers[channel].pop(symbol, None)
            await self.stream._send_unsubscribe_msg(channel, list(symbols))

    async def close(self) -> None:
        """Close the socket (public API)."""
        await self.stream.close()


class _TimeoutSession(Session):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", REST_TIMEOUT_S)
        return super().request(*args, **kwargs)


def with_request_timeout(client: C) -> C:
    """``client`` with a timeout on every request (``REST_TIMEOUT_S``)."""
    client._session = _TimeoutSession()
    return client
