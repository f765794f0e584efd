"""``tickwire status`` (live table of prices and P&L) and ``tickwire position set``, on real Redis and broker."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
from redis.asyncio import Redis
from rich.console import Console

from consumers.status_table import run_status
from deploy.embedded.readiness import free_port
from schemas.topics import API_SUBSCRIPTIONS_KEY, POSITIONS
from tests.helpers import eventually, read_topic_until, tickwire_env, unique_symbol
from tests.integration.api_support import api_settings, seed_close, seed_position, seed_price

pytestmark = pytest.mark.integration


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tickwire", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_status_given_prices_and_positions_shows_them_and_the_total(redis_url: str, redis: Redis) -> None:
    held, watched, closed = unique_symbol("H"), unique_symbol("W"), unique_symbol("C")
    await seed_price(redis, held, "151.99", "152.01")
    await seed_position(redis, held, "100", "150.00")
    await seed_position(redis, closed, "-10", "50.00")
    await seed_close(redis, closed, "49.00")
    await redis.sadd(API_SUBSCRIPTIONS_KEY, watched)
    console = Console(record=True, width=160, file=io.StringIO())

    code = await run_status(api_settings(redis_url, TICKWIRE_SYMBOLS=held), "default", asyncio.Event(),
                            console=console, once=True)

    text = console.export_text()
    assert code == 0
    assert f"{held}" in text and "152.00" in text and "200.00" in text
    assert f"{closed}" in text and "closing" in text and "10.00" in text
    assert f"{watched}" in text and "no live price" in text
    assert "Total" in text and "210.00" in text and "ingest not running" in text


async def test_status_given_live_mode_redraws_when_prices_change(redis_url: str, redis: Redis) -> None:
    """Test that the live table picks up a new price without restarting."""
    symbol = unique_symbol("V")
    await seed_price(redis, symbol, "10.00", "10.02")
    await seed_position(redis, symbol, "10", "10.00")
    out = io.StringIO()
    stop = asyncio.Event()
    board = asyncio.create_task(run_status(api_settings(redis_url, TICKWIRE_SYMBOLS=symbol), "default", stop,
                                           refresh_s=0.05, console=Console(file=out, width=160, force_terminal=True)))
    try:
        await eventually(lambda: _shows(out, "0.10"), 30, "the first P&L")
        await seed_price(redis, symbol, "11.00", "11.02")
        await eventually(lambda: _shows(out, "10.10"), 30, "the table to show the new P&L")
    finally:
        stop.set()
    assert await asyncio.wait_for(board, 30) == 0


async def _shows(out: io.StringIO, text: str) -> bool:
    return text in out.getvalue()


async def test_status_given_redis_down_says_so_instead_of_crashing() -> None:
    console = Console(record=True, width=160, file=io.StringIO())
    code = await run_status(api_settings(f"redis://127.0.0.1:{free_port()}/0"), "default", asyncio.Event(),
                            console=console, once=True)
    assert code == 0 and "redis unavailable" in console.export_text()


async def test_position_set_cli_given_short_publishes_it_to_the_positions_topic(kafka_bootstrap: str) -> None:
    symbol = unique_symbol("Z")
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)

    code, out = await run_cli("position", "set", symbol.lower(), "-50", "150.125", "--account", "fund-9", env=env)
    bad_code, bad_out = await run_cli("position", "set", symbol, "10", "cheap", env=env)

    assert code == 0, out
    assert f"published {symbol} qty=-50 avg_entry_price=150.125 account=fund-9" in out
    records = await read_topic_until(kafka_bootstrap, POSITIONS.name,
                                     lambda values: any(v.get("symbol") == symbol for v in values), timeout=60)
    [record] = [v for v in records if v.get("symbol") == symbol]
    assert (record["account"], record["qty"], record["avg_entry_price"]) == ("fund-9", "-50", "150.125")
    assert bad_code == 2 and "avg_entry_price is not a decimal number: 'cheap'" in bad_out
