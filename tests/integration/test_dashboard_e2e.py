"""The dashboard in a real headless Chromium: it shows live prices and P&L and updates them in place."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from deploy.embedded.readiness import free_port
from schemas.events import AccountPnL, PnLUpdated, PositionPnL
from schemas.timestamps import format_ns, now_ns
from schemas.topics import POSITIONS, PRICES, pnl_channel, pnl_key, pnl_total_key
from tests.helpers import eventually, read_topic_until, unique_symbol
from tests.integration.api_support import (
    api_settings,
    price_snapshot,
    queue_pnl_entry,
    seed_close,
    seed_pnl,
    seed_price,
    served_app,
    ts,
)
from tests.integration.test_api_stream import ProjectedPrices, _sent

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-port=0"]


def ensure_chromium() -> str:
    """The chromium binary; installed with apt when missing and we are root, else the test is skipped."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get): "
                    "apt-get install chromium")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "timeout": 900, "check": False}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, **quiet)  # type: ignore[call-overload]
    install = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, **quiet)  # type: ignore[call-overload]
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"installing chromium failed: {(update.stderr + install.stderr).decode()[-500:]}")
    return found


class DevTools:
    """The least of the Chrome DevTools protocol: call a method on a page and get its result."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: object) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.socket.send(orjson.dumps({"id": call_id, "method": method, "params": params}).decode())
        while True:  # events arrive in between; only our answer ends the wait
            message = orjson.loads(await self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]  # type: ignore[no-any-return]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[DevTools]:
    """A page in a fresh headless Chromium, driven over the DevTools protocol."""
    binary = await asyncio.to_thread(ensure_chromium)
    profile = Path(tempfile.mkdtemp(prefix="tickwire-chromium-", dir=tmp_path))
    log = (tmp_path / "chromium.log").open("wb")
    proc = await asyncio.create_subprocess_exec(binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
                                                stdout=log, stderr=log, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"

        async def port_known() -> str | None:
            if proc.returncode is not None:
                raise AssertionError(f"chromium exited: {(tmp_path / 'chromium.log').read_text()[-2000:]}")
            text = port_file.read_text() if port_file.exists() else ""
            return text.splitlines()[0] if text.strip() else None

        port = await eventually(port_known, 60, "chromium's DevTools port")
        async with httpx.AsyncClient(timeout=10) as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            yield DevTools(socket)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, 9)
        await proc.wait()
        log.close()


def cell(table: str, symbol: str, field: str) -> str:
    """JS reading one cell of the dashboard (null while the row does not exist)."""
    return (f"document.querySelector('#{table} tr[data-symbol=\"{symbol}\"] [data-field=\"{field}\"]')"
            f"?.textContent ?? null")


@pytest.mark.timeout(1200)  # the first run may install chromium with apt
async def test_dashboard_given_live_updates_changes_prices_pnl_and_chart_in_place(
        redis_url: str, redis: Redis, browser_page: DevTools) -> None:
    """Test that the page shows the snapshot, then new prices, P&L, total and chart points without reloading."""
    # Arrange
    symbol, account = unique_symbol("D"), "dash-acct"
    await seed_price(redis, symbol, "100.00", "100.02")
    await seed_pnl(redis, symbol, "10", "99.00", "100.01", "10.10", "10.10", account=account)
    async with served_app(api_settings(redis_url)) as base_url:
        await browser_page.call("Page.enable")
        await browser_page.call("Page.navigate", url=f"{base_url}/?account={account}")
        first = await eventually(lambda: _read(browser_page, symbol), 60, "the dashboard's first values")
        await browser_page.evaluate("window.__sameRow = document.querySelector('#prices tbody tr')")

        # Act
        await seed_price(redis, symbol, "101.00", "101.02", publish=True)
        await _publish_pnl(redis, symbol, account, mark="101.01", pnl="20.10")

        # Assert
        second = await eventually(lambda: _read(browser_page, symbol, until_mid="101.01"), 60, "updated values")
        same_row = await browser_page.evaluate("window.__sameRow === document.querySelector('#prices tbody tr')")
    assert first == {"mid": "100.01", "bid": "100.00", "pnl": "10.10", "total": "10.10", "points": "1",
                     "connection": "live"}
    assert second == {"mid": "101.01", "bid": "101.00", "pnl": "20.10", "total": "20.10", "points": "2",
                      "connection": "live"}
    assert same_row is True  # updated in place, not re-rendered by a reload


async def _read(page: DevTools, symbol: str, until_mid: str | None = None) -> dict[str, Any] | None:
    values = await page.evaluate(
        "({mid: " + cell("prices", symbol, "mid") + ", bid: " + cell("prices", symbol, "bid")
        + ", pnl: " + cell("positions", symbol, "unrealized_pnl")
        + ", total: document.getElementById('total')?.textContent ?? null"
        + ", points: document.querySelector('#prices tr[data-symbol=\"" + symbol + "\"] svg')?.dataset.points ?? null"
        + ", connection: document.getElementById('connection')?.textContent ?? null})")
    if not values or values["mid"] is None or values["pnl"] in (None, "—"):
        return None
    if until_mid is not None and (values["mid"] != until_mid or values["pnl"] == "10.10"):
        return None
    return values  # type: ignore[no-any-return]


async def _publish_pnl(redis: Redis, symbol: str, account: str, mark: str, pnl: str) -> None:
    """A revaluation as the P&L projection writes it: hash, total, message and stream entry together."""
    at = ts()
    valued = PositionPnL(account=account, symbol=symbol, qty=Decimal(10), avg_entry_price=Decimal("99.00"),
                         mark_price=Decimal(mark), unrealized_pnl=Decimal(pnl), price_source="real-time",
                         price_timestamp=at, updated_at=at)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(pnl_key(account), symbol, valued.to_json())
    pipe.set(pnl_total_key(account), AccountPnL(account=account, total_unrealized=Decimal(pnl), positions=1,
                                                updated_at=at).to_json())
    message = PnLUpdated(account=account, symbol=symbol, qty=valued.qty, mark_price=valued.mark_price,
                         unrealized_pnl=valued.unrealized_pnl, price_source="real-time",
                         total_unrealized=Decimal(pnl), timestamp=at).to_json()
    pipe.publish(pnl_channel(account), message)
    queue_pnl_entry(pipe, account, message)
    await pipe.execute()


async def _produce_history(bootstrap: str, symbol: str, mids_seconds_ago: list[tuple[str, int]]) -> None:
    """Prices on the ``prices`` topic as the price processor writes them, stamped seconds ago."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for mid, ago in mids_seconds_ago:
            at_ns = now_ns() - ago * 1_000_000_000
            snap = price_snapshot(symbol, mid, mid, timestamp=format_ns(at_ns))
            await producer.send_and_wait(PRICES.name, snap.to_json(), key=symbol.encode(),
                                         timestamp_ms=at_ns // 1_000_000)
    finally:
        await producer.stop()


def _text(selector: str) -> str:
    return f"document.querySelector({selector!r})?.textContent ?? null"


@pytest.mark.timeout(1200)
async def test_dashboard_given_history_close_and_positions_shows_trader_columns_and_adds_from_forms(
        redis_url: str, redis: Redis, kafka_bootstrap: str, browser_page: DevTools) -> None:
    """Test spread, change vs previous close, market value, P&L %, totals, time zone, a chart filled from the
    ``prices`` topic on load, and the add-symbol and add-position forms reaching the API."""
    # Arrange
    symbol, account = unique_symbol("H"), "dash-trader"
    await _produce_history(kafka_bootstrap, symbol, [("98.00", 120), ("99.00", 60), ("99.50", 30)])
    await seed_close(redis, symbol, "95.00")
    await seed_price(redis, symbol, "100.00", "100.02")
    await seed_pnl(redis, symbol, "10", "99.00", "100.01", "10.10", "10.10", account=account)
    async with served_app(api_settings(redis_url, kafka_bootstrap)) as base_url:
        await browser_page.call("Page.enable")
        await browser_page.call("Page.navigate", url=f"{base_url}/?account={account}")

        async def loaded() -> dict[str, Any] | None:
            fields = {"spread": cell("prices", symbol, "spread"), "close": cell("prices", symbol, "close"),
                      "change": cell("prices", symbol, "change"), "pct": cell("prices", symbol, "change_pct"),
                      "time": cell("prices", symbol, "timestamp"),
                      "points": f"document.querySelector('#prices tr[data-symbol=\"{symbol}\"] svg')"
                                "?.dataset.points ?? null",
                      "value": cell("positions", symbol, "market_value"),
                      "pnl_pct": cell("positions", symbol, "pnl_pct"),
                      "total_value": _text("#positions tfoot [data-field=total_market_value]"),
                      "total": _text("#positions tfoot [data-field=total_unrealized]"),
                      "zone": _text("#timezone"), "empty": "document.getElementById('prices-empty').hidden"}
            values = await browser_page.evaluate("({" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "})")
            return values if values and values["points"] == "4" and values["change"] not in (None, "—") else None

        shown = await eventually(loaded, 60, "history, close and positions on the page")

        # Act: the forms
        await browser_page.evaluate(
            "(() => { const f = document.getElementById('position-form'); f.symbol.value = '" + symbol.lower()
            + "'; f.qty.value = '-5'; f.avg_entry_price.value = '101.50'; f.requestSubmit(); })()")
        await browser_page.evaluate(
            "(() => { const f = document.getElementById('subscribe-form'); f.symbol.value = '" + symbol
            + "'; f.requestSubmit(); })()")

        async def answered() -> tuple[str, str] | None:
            texts = (await browser_page.evaluate(_text("#position-result")),
                     await browser_page.evaluate(_text("#subscribe-result")))
            return texts if all(t and t != "sending…" for t in texts) else None

        position_result, subscribe_result = await eventually(answered, 30, "the forms' answers")
        records = await read_topic_until(kafka_bootstrap, POSITIONS.name,
                                         lambda values: any(v.get("symbol") == symbol for v in values), timeout=60)

    # Assert
    assert shown["spread"] == "0.02" and shown["close"] == "95.00"
    assert shown["change"] == "+5.01" and shown["pct"] == "+5.27%"  # 100.01 vs 95.00
    assert shown["value"] == "1,000.10" and shown["pnl_pct"] == "+1.02%"  # 10.10 on a cost of 990.00
    assert shown["total_value"] == "1,000.10" and shown["total"] == "10.10"
    assert shown["zone"] and shown["time"].endswith(" " + shown["zone"]), shown
    assert shown["empty"] is True
    assert position_result == f"{symbol} position set for account {account}"
    assert subscribe_result.startswith("Successfully subscribed to 1 symbol")
    assert [(r["qty"], r["avg_entry_price"], r["account"]) for r in records if r.get("symbol") == symbol] == [
        ("-5", "101.50", account)]


async def test_dashboard_given_no_prices_and_no_positions_says_so_and_how_to_add_them(
        redis_url: str, browser_page: DevTools) -> None:
    """Test the empty state: a message for each table instead of bare headers."""
    async with served_app(api_settings(redis_url)) as base_url:
        await browser_page.call("Page.enable")
        await browser_page.call("Page.navigate", url=f"{base_url}/?account=nobody-here")

        async def live() -> dict[str, Any] | None:
            state = await browser_page.evaluate(
                "({connection: document.getElementById('connection')?.textContent ?? null,"
                " prices: document.getElementById('prices-empty')?.hidden === false"
                " ? document.getElementById('prices-empty').textContent : null,"
                " positions: document.getElementById('positions-empty')?.hidden === false"
                " ? document.getElementById('positions-empty').textContent : null,"
                " total: document.getElementById('total')?.textContent ?? null})")
            return state if state and state["connection"] == "live" else None

        state = await eventually(live, 60, "the dashboard to connect")

    assert state["prices"] is not None and "No prices yet" in state["prices"] and "add a symbol" in state["prices"]
    assert state["positions"] is not None and "No open positions" in state["positions"]
    assert state["total"] == "0.00"


@pytest.mark.timeout(1200)
async def test_dashboard_given_the_api_restarted_keeps_updating_without_a_reload_and_its_chart_has_no_hole(
        redis_url: str, redis: Redis, browser_page: DevTools) -> None:
    """Test that the page resumes after an API restart from the last change it got (EventSource's Last-Event-ID):
    no reload, and its chart holds every price published since it loaded, once each and in order."""
    # Arrange: prices through the price projection, 20 a second (the chart keeps 300 points)
    symbol = unique_symbol("W")
    prices = ProjectedPrices(redis, [symbol], rate=20)
    stop = asyncio.Event()
    pumping = asyncio.create_task(prices.run(stop))
    port = free_port()
    settings = api_settings(redis_url)
    points = (f"(history.get('{symbol}') || []).map(p => Math.round(p.mid * 100))")
    try:
        await eventually(lambda: _sent(prices, 5), 30, "prices flowing")
        async with served_app(settings, port) as base_url:
            await browser_page.call("Page.enable")
            await browser_page.call("Page.navigate", url=f"{base_url}/")
            first = await eventually(lambda: _chart_longer_than(browser_page, points, 20), 60, "the chart to fill")
            await browser_page.evaluate("window.__sameDocument = true")
        # Act: the API is down for a while (prices go on), then back on the same address
        down_until = prices.sent + 40
        await eventually(lambda: _sent(prices, down_until), 30, "prices while the API is down")
        async with served_app(settings, port):
            after = await eventually(lambda: _chart_longer_than(browser_page, points, len(first) + 80), 90,
                                     "the chart to go on after the restart")
            stop.set()
            await pumping
            last = 100 * prices.n[symbol] + 1
            chart = await eventually(lambda: _chart_ending_at(browser_page, points, last), 60, "the last price")
            state = await browser_page.evaluate(
                "({same: window.__sameDocument === true, connection: document.getElementById('connection')"
                ".textContent})")
    finally:
        stop.set()
        await asyncio.gather(pumping, return_exceptions=True)

    # Assert
    assert state == {"same": True, "connection": "live"}  # no reload
    assert after[:len(first)] == first
    assert chart == list(range(first[0], last + 1, 100))  # every price since the page loaded: no hole, no repeat


async def _chart_longer_than(page: DevTools, points: str, count: int) -> list[int] | None:
    values = await page.evaluate(points)
    return values if values and len(values) > count else None


async def _chart_ending_at(page: DevTools, points: str, last: int) -> list[int] | None:
    values = await page.evaluate(points)
    return values if values and values[-1] == last else None
