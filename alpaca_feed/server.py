"""``AlpacaFeedServer``: a local WebSocket server speaking Alpaca's v2 stock-stream protocol.

The real alpaca-py ``StockDataStream`` connects to it through ``url_override=server.url()``. It serves
synthetic market data (seeded random walks) and lets tests ``inject()`` exact messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import WSCloseCode, web

from alpaca_feed.bursts import BurstPlan
from alpaca_feed.control import add_control_routes
from alpaca_feed.fault_script import ScriptedFault, run_fault_script
from alpaca_feed.faults import FeedFaults
from alpaca_feed.history import DEFAULT_LIMIT as DEFAULT_HISTORY_LIMIT
from alpaca_feed.history import History
from alpaca_feed.hours import MarketHours
from alpaca_feed.hub import DEFAULT_UNIVERSE, FeedHub
from alpaca_feed.market import EventRates, MarketModel
from alpaca_feed.playback import Playback
from alpaca_feed.protocol import Encoding, timestamp_to_ns, with_type_first
from alpaca_feed.rest import MarketDataApi
from alpaca_feed.session import DEFAULT_MAX_PENDING_BYTES, FeedSession
from alpaca_feed.subscriptions import (
    DEFAULT_SYMBOL_LIMITS,
    FEEDS,
    STOCK_ACK_KEYS,
    STOCK_CHANNELS,
    channel_for,
)
from alpaca_feed.synthetic import SyntheticFeed

log = logging.getLogger(__name__)

# alpaca-py fragments big subscribe messages into 32 KiB frames; thousands of symbols fit easily.
MAX_CLIENT_MESSAGE_BYTES = 16 * 1024 * 1024
# How long a server-initiated close waits for the client's close frame.
CLOSE_TIMEOUT_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 5.0


class AlpacaFeedServer:
    """Local Alpaca market-data stream on ``ws://host:port/v2/{iex,sip,delayed_sip,test}``.

    Args:
        host, port: where to listen; port 0 picks a free port (see ``port`` after ``start()``).
        rate_per_symbol: synthetic quotes per second per subscribed symbol; 0 disables synthetic data.
        seed: seeds the synthetic market (same seed, same price paths).
        key, secret: when set, auth with anything else gets ``402 auth failed``; None accepts any.
        auth_timeout: seconds a client has to authenticate before ``404 auth timeout``.
        connections_per_key: authenticated sessions allowed per (key, feed) before ``406``; None = no cap.
        plan_feeds: feeds the simulated plan includes; auth on others gets ``409``. None = all feeds.
        max_pending_bytes: per-session outbound backlog (bytes) before ``407 slow client`` and disconnect.
        universe: the symbols a ``*`` subscription gets synthetic data for.
        symbol_limits: per feed, how many symbols one session may hold on trades and quotes together
            before ``405 symbol limit exceeded`` (default: 30 on ``iex``, no cap elsewhere).
        calendar: session hours of the synthetic market: ``always`` (open around the clock) or ``us``
            (weekdays 04:00-20:00 New York time, regular hours 09:30-16:00).
        events: rates of the rarer synthetic messages (late trades, corrections, cancels, pauses).
        history_limit: trades and quotes kept per symbol for the REST API (plus a day of minute bars
            and 30 daily bars); 0 keeps nothing.
        control: serve ``POST /_control/faults/{name}`` (fault injection over HTTP).
        bursts: planned bursts of the synthetic rate (``BurstPlan`` or specs such as ``"10x1@open"``).
        simulate: symbols the synthetic market moves from the start, subscribed or not (so REST has data).
        realistic: synthetic quotes shaped like a real feed's: each symbol's at its own random (Poisson) times,
            sent in a frame every 5 ms, every quote moving the mid. Default: every subscribed symbol quotes at
            the same ticks (every 10-100 ms), and about one quote in six leaves the mid where it was.

    Besides the stream, the same port serves Alpaca's market-data REST API (``/v2/stocks/...``,
    for ``StockHistoricalDataClient(url_override=server.http_url())``) from what was published.

    The ``test`` feed, like Alpaca's, only carries synthetic data for FAKEPACA (``inject`` is unrestricted).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_per_symbol: float = 5.0,
        seed: int = 0,
        key: str | None = None,
        secret: str | None = None,
        auth_timeout: float = 10.0,
        connections_per_key: int | None = 1,
        plan_feeds: Iterable[str] | None = None,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        universe: Iterable[str] = DEFAULT_UNIVERSE,
        symbol_limits: Mapping[str, int | None] | None = None,
        calendar: str = "always",
        events: EventRates | None = None,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        control: bool = True,
        bursts: Iterable[BurstPlan | str] = (),
        simulate: Iterable[str] = (),
        realistic: bool = False,
    ) -> None:
        if rate_per_symbol < 0:
            raise ValueError("rate_per_symbol must be >= 0")
        self._host = host
        self._requested_port = port
        self._rate = rate_per_symbol
        self._auth_timeout = auth_timeout
        self._bursts = tuple(plan if isinstance(plan, BurstPlan) else BurstPlan.parse(plan) for plan in bursts)
        self._simulate = tuple(simulate)
        self._symbol_limits = dict(DEFAULT_SYMBOL_LIMITS if symbol_limits is None else symbol_limits)
        self._realistic = realistic
        self.model = MarketModel(seed, events=events, hours=MarketHours(calendar), moving_mid=realistic)
        self._hub = FeedHub(
            key=key,
            secret=secret,
            connections_per_key=connections_per_key,
            plan_feeds=plan_feeds,
            universe=tuple(universe),
            max_pending_bytes=max_pending_bytes,
        )
        self.history = History(history_limit)
        self._rest = MarketDataApi(self.history, self.model, key=key, secret=secret)
        self._control = control
        self.faults = FeedFaults(self._hub, self.model, self._publish)
        self._runner: web.AppRunner | None = None
        self._synthetic: SyntheticFeed | None = None
        self._port: int | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_at = 0.0

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving (and start the synthetic generator when the rate is > 0)."""
        if self._runner is not None:
            raise RuntimeError("AlpacaFeedServer already started")
        app = web.Application()
        app.router.add_get("/v2/{feed}", self._handle_stream)
        self._rest.add_routes(app)
        if self._control:
            add_control_routes(app, self.faults)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._stopping = False
        self._started_at = asyncio.get_running_loop().time()
        self._port = runner.addresses[0][1]
        if self._rate > 0:
            self._synthetic = SyntheticFeed(
                self._hub,
                self.model,
                self._rate,
                lambda events: self._publish(events, synthetic=True),
                bursts=self._bursts,
                always=self._simulate,
                staggered=self._realistic,
            )
            self._synthetic.start()
            self.faults.burst_target = self._synthetic.burst
        log.info("alpaca feed listening on %s", self.url("{feed}"))

    async def stop(self) -> None:
        """Close every session with a close frame (1001), stop the generator and the listener.

        Safe to call more than once.
        """
        if self._runner is None or self._stopping:
            return
        self._stopping = True
        try:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._synthetic is not None:
                await self._synthetic.stop()
            await self._close_all(WSCloseCode.GOING_AWAY, "server shutdown")
            await self._runner.cleanup()
        finally:
            self._runner = None

    async def __aenter__(self) -> AlpacaFeedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (available after ``start()``)."""
        if self._port is None:
            raise RuntimeError("AlpacaFeedServer not started")
        return self._port

    def url(self, feed: str = "iex") -> str:
        """The stream URL for ``feed``, e.g. ``ws://127.0.0.1:8765/v2/iex``."""
        return f"ws://{self._authority()}/v2/{feed}"

    def http_url(self) -> str:
        """The REST base URL (``ALPACA_DATA_URL``, alpaca-py's ``url_override``), e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self._authority()}"

    def _authority(self) -> str:
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    # --- observation --------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Connection attempts on valid feed paths so far (grows with every client reconnect)."""
        return self._hub.connection_count

    @property
    def handshake_rejections(self) -> int:
        """WebSocket upgrades refused with an HTTP error status by ``faults.reject_handshakes``."""
        return self._hub.handshake_rejections

    @property
    def auth_rejections(self) -> int:
        """Auth attempts answered with an error (402, 406, 409, … and forced refusals)."""
        return self._hub.auth_rejections

    @property
    def sessions(self) -> tuple[FeedSession, ...]:
        """Live sessions (greeted, not yet closed), for inspection."""
        return tuple(self._hub.sessions)

    async def wait_for_subscription(self, channel: str, symbols: Iterable[str], timeout: float = 10.0) -> None:
        """Resolve once one authenticated session is subscribed to all ``symbols`` on ``channel``.

        A ``*`` subscription covers every symbol. Raises TimeoutError after ``timeout`` seconds.
        """
        if channel not in STOCK_CHANNELS and channel not in STOCK_ACK_KEYS:
            raise ValueError(f"unknown channel {channel!r}")
        wanted = [symbols] if isinstance(symbols, str) else list(symbols)
        await self._wait(
            lambda: any(s.subscriptions.covers(channel, wanted) for s in self._hub.authenticated_sessions()),
            timeout,
            f"a session subscribed to {channel} {wanted}",
        )

    async def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        """Resolve once ``connection_count >= count`` (e.g. to observe client reconnects)."""
        await self._wait(lambda: self._hub.connection_count >= count, timeout, f"{count} connection attempts")

    async def wait_for_sessions(self, count: int, timeout: float = 10.0) -> None:
        """Resolve once exactly ``count`` sessions are authenticated (0 = every session has ended)."""
        await self._wait(
            lambda: len(self._hub.authenticated_sessions()) == count,
            timeout,
            f"{count} authenticated sessions",
        )

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Resolve once ``predicate()`` holds, re-checked on every session, auth or fault event.

        E.g. ``await server.wait_until(lambda: server.auth_rejections >= 2)``. Raises TimeoutError.
        """
        await self._wait(predicate, timeout, what)

    # --- data ---------------------------------------------------------------------------------

    def inject(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Send data messages to every authenticated session subscribed to their symbol (or ``*``).

        Each message needs ``T`` and ``S``. ``t`` may be int ns, a datetime or a msgpack.Timestamp
        (any other value is sent unchanged, e.g. to test client robustness). Messages keep their
        order and are batched into as few frames as possible per session. Returns the number of
        sessions that got at least one message.
        """
        prepared = []
        for message in messages:
            if channel_for(message.get("T")) is None or not isinstance(message.get("S"), str):
                raise ValueError(f"not a routable data message (needs known 'T' and str 'S'): {message!r}")
            out = with_type_first(message)
            if "t" in out:
                out["t"] = timestamp_to_ns(out["t"])
            prepared.append(out)
        return self._publish(prepared)

    def replay(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        shift_to_now: bool = False,
        loop: bool = False,
        wait_for_subscriber: bool = True,
    ) -> asyncio.Task[int]:
        """Start replaying a recording (JSON Lines or msgpack of Alpaca messages) to the subscribers.

        ``speed``: 1 = real time, N = N times faster, 0 = as fast as the clients read. By default the
        replay waits until some session has subscribed, so nothing is sent into the void. Returns the
        task (its result: messages sent); ``stop()`` cancels it.
        """
        hub = self._hub
        replay = Playback(
            path,
            self._publish,
            speed=speed,
            shift_to_now=shift_to_now,
            loop=loop,
            wait_until_ready=(lambda: hub.wait_until(hub.has_subscribers)) if wait_for_subscriber else None,
            backpressure=lambda: hub.wait_for_backlogs(hub.max_pending_bytes // 4),
        )
        task = asyncio.create_task(replay.run(), name=f"alpaca-feed-replay-{replay.path.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run_fault_script(self, steps: Iterable[ScriptedFault], *, started: float | None = None) -> asyncio.Task[int]:
        """Trigger scripted faults at their ``at_s`` after ``started`` (loop time; default: the server's start)."""
        task = asyncio.create_task(
            run_fault_script(self.faults, list(steps), self._started_at if started is None else started),
            name="alpaca-feed-fault-script",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close_sessions(self, code: int = WSCloseCode.INTERNAL_ERROR, reason: str = "") -> int:
        """Close every live session with ``code`` (default 1011), e.g. to make clients reconnect.

        Returns how many sessions were closed, once they have ended.
        """
        return await self._close_all(code, reason)

    # --- internals ----------------------------------------------------------------------------

    def _publish(self, messages: list[dict[str, Any]], synthetic: bool = False) -> int:
        self.history.record(messages)  # also while muted: REST has what the stream withheld
        return self._hub.publish(messages, synthetic=synthetic)

    async def _wait(self, predicate: Callable[[], bool], seconds: float, what: str) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._hub.wait_until(predicate)
        except TimeoutError:
            raise TimeoutError(f"timed out after {seconds}s waiting for {what}") from None

    async def _close_all(self, code: int, reason: str) -> int:
        sessions = list(self._hub.sessions)
        for session in sessions:
            session.close(code, reason, urgent=True)
        if sessions:
            await asyncio.wait([session.finished for session in sessions], timeout=STOP_TIMEOUT_SECONDS)
        return len(sessions)

    async def _handle_stream(self, request: web.Request) -> web.StreamResponse:
        feed = request.match_info["feed"]
        if feed not in FEEDS:
            raise web.HTTPNotFound(text=f"unknown feed {feed!r}")
        if self._stopping:
            raise web.HTTPServiceUnavailable(text="shutting down")
        self._hub.connection_attempted()
        refusal = self.faults.handshake_refusal()
        if refusal is not None:
            self._hub.handshake_rejected()
            return web.json_response({"code": refusal, "message": "fault: handshake rejected"}, status=refusal)
        ws = web.WebSocketResponse(compress=True, max_msg_size=MAX_CLIENT_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT_SECONDS)
        await ws.prepare(request)
        session = FeedSession(
            ws,
            feed=feed,
            encoding=Encoding.from_content_type(request.headers.get("Content-Type")),
            hub=self._hub,
            auth_timeout=self._auth_timeout,
            max_pending_bytes=self._hub.max_pending_bytes,
            user_agent=request.headers.get("User-Agent", ""),
            remote=request.remote,
            transport=request.transport,
            symbol_limit=self._symbol_limits.get(feed),
        )
        await session.run()
        return ws
