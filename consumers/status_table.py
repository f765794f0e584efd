"""``tickwire status``: a live terminal table of prices and real-time P&L, read from Redis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from consumers.api.realtime_pnl import AccountValuation, RealtimePnL
from consumers.api.status_reads import read_ingest_status
from consumers.tools.settings import ToolSettings
from schemas.events import IngestStatus, PriceSnapshot
from schemas.topics import API_SUBSCRIPTIONS_KEY, price_key
from tickwire.redis_values import as_text


@dataclass
class BoardState:
    """One reading of everything the board shows."""

    prices: dict[str, PriceSnapshot | None] = field(default_factory=dict)  # None: no live price
    valuation: AccountValuation | None = None
    ingest: IngestStatus | None = None
    error: str | None = None
    read_at: str = ""


class StatusBoard:
    """Reads the board's state: prices of the configured, subscribed and held symbols, and the P&L."""

    def __init__(self, redis: Redis, settings: ToolSettings, account: str) -> None:
        self.redis = redis
        self.settings = settings
        self.account = account
        self.pnl = RealtimePnL(redis, settings.mark_policy)

    async def read(self) -> BoardState:
        """One reading (an error message instead when Redis does not answer)."""
        try:
            valuation = await self.pnl.value_account(self.account)
            ingest = await read_ingest_status(self.redis)
            symbols = set(self.settings.symbols) | {p.symbol for p in valuation.positions}
            symbols |= {as_text(s) for s in await self.redis.smembers(API_SUBSCRIPTIONS_KEY)}
            symbols |= set(ingest.subscribed_symbols if ingest else ())
            ordered = sorted(symbols)
            raws = await self.redis.mget([price_key(s) for s in ordered])
        except (RedisError, OSError) as exc:
            return BoardState(error=f"redis unavailable: {exc}", read_at=time.strftime("%H:%M:%S"))
        prices = {s: PriceSnapshot.model_validate_json(r) if r else None for s, r in zip(ordered, raws, strict=True)}
        return BoardState(prices=prices, valuation=valuation, ingest=ingest, read_at=time.strftime("%H:%M:%S"))


def render(state: BoardState, account: str, policy: str) -> Group:
    """The board as rich renderables: a status line, the prices table and the P&L table."""
    if state.error:
        return Group(Text(f"{state.read_at}  {state.error}", style="bold red"))
    ingest = state.ingest
    feed = ("ingest not running" if ingest is None else
            f"ingest {'connected' if ingest.connected else 'DISCONNECTED'}, {len(ingest.subscribed_symbols)} symbols,"
            f" {ingest.reconnect_attempts} reconnects")
    prices = Table(title="Live prices", title_justify="left", expand=False)
    for name in ("Symbol", "Bid", "Ask", "Mid", "Spread (bps)", "Exchange time"):
        prices.add_column(name, justify="left" if name in ("Symbol", "Exchange time") else "right")
    for symbol, price in state.prices.items():
        if price is None:
            prices.add_row(symbol, "-", "-", "-", "-", Text("no live price", style="dim"))
        else:
            prices.add_row(symbol, str(price.bid), str(price.ask), str(price.mid), str(price.spread_bps),
                           price.timestamp.replace("T", " ")[:23])
    pnl = Table(title=f"Unrealized P&L, account {account} (mark: {policy})", title_justify="left")
    for name in ("Symbol", "Qty", "Avg entry", "Mark", "Source", "Unrealized P&L"):
        pnl.add_column(name, justify="left" if name in ("Symbol", "Source") else "right")
    valuation = state.valuation
    for p in valuation.positions if valuation else []:
        pnl.add_row(p.symbol, str(p.qty), str(p.avg_entry_price), _text(p.mark_price), p.price_source,
                    _money(p.unrealized_pnl))
    total = valuation.total_unrealized if valuation else Decimal("0.00")
    pnl.add_section()
    pnl.add_row("Total", "", "", "", "", _money(total))
    return Group(Text(f"{state.read_at}  tickwire status: {feed}  (Ctrl-C to quit)"), prices, pnl)


def _text(value: Decimal | None) -> str:
    return "-" if value is None else str(value)


def _money(value: Decimal | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(str(value), style="green" if value > 0 else "red" if value < 0 else "")


async def run_status(settings: ToolSettings, account: str, stop: asyncio.Event, refresh_s: float = 0.5,
                     console: Console | None = None, once: bool = False) -> int:
    """Show the board, re-read every ``refresh_s``, until ``stop`` is set (``once``: print one reading)."""
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set, and no `tickwire run` recorded its Redis in TICKWIRE_RUN_DIR")
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=5.0)
    board = StatusBoard(redis, settings, account)
    console = console or Console()
    try:
        if once:
            console.print(render(await board.read(), account, settings.mark_policy))
            return 0
        with Live(render(await board.read(), account, settings.mark_policy), console=console,
                  auto_refresh=False, transient=False) as live:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), refresh_s)  # the refresh period, or stop
                except TimeoutError:
                    pass
                live.update(render(await board.read(), account, settings.mark_policy), refresh=True)
        return 0
    finally:
        await redis.aclose()
