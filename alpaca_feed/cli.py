"""``tickwire feed serve`` and ``tickwire feed record``: the local Alpaca feed and its recorder."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Annotated

import typer

from alpaca_feed.bursts import BurstPlan
from alpaca_feed.hours import CALENDARS
from alpaca_feed.hub import DEFAULT_UNIVERSE
from alpaca_feed.market import EventRates
from alpaca_feed.recording import RecordingFormat
from alpaca_feed.subscriptions import DEFAULT_SYMBOL_LIMITS
from tickwire.signals import stop_on_signals

GC_YOUNG_THRESHOLD = 20_000

feed_app = typer.Typer(
    help="Local Alpaca market-data feed (Alpaca v2 stock stream + market-data REST, synthetic or replayed data).",
    no_args_is_help=True,
    add_completion=False,
)


def _symbol_list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip().upper() for part in (text or "").split(",") if part.strip())


def _speed(text: str) -> float:
    if text.lower() in ("max", "fast", "0"):
        return 0.0
    try:
        speed = float(text.lower().removesuffix("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use a factor (1, 10, 0.5) or 'max'") from None
    if speed <= 0:
        raise typer.BadParameter("speed must be positive (or 'max')")
    return speed


@feed_app.callback()
def _feed() -> None:
    """Local Alpaca market-data feed."""  # a callback keeps subcommands subcommands


@feed_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free port.")] = 8765,
    rate: Annotated[float, typer.Option(help="Synthetic quotes per second per symbol; 0 = no synthetic data.")] = 5.0,
    burst: Annotated[
        list[str] | None,
        typer.Option(help="Rate burst FACTORxSECONDS\\[@open|@SECONDS|@everySECONDS], e.g. 10x1@open (repeatable)."),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Comma list: what '*' subscribes, simulated from the start even unsubscribed (REST data)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 0,
    calendar: Annotated[str, typer.Option(help=f"Session hours: {' or '.join(CALENDARS)}.")] = "always",
    rare_events: Annotated[
        bool, typer.Option(help="Late trades/updated bars, corrections, cancels and volatility pauses.")
    ] = True,
    replay: Annotated[
        Path | None, typer.Option(help="Replay this recording (JSON Lines or msgpack of Alpaca messages).")
    ] = None,
    speed: Annotated[str, typer.Option(help="Replay speed: 1 = real time, N = N times faster, max = no pauses.")] = "1",
    shift_to_now: Annotated[bool, typer.Option(help="Move replayed timestamps so the first one is now.")] = False,
    loop: Annotated[bool, typer.Option(help="Replay the recording again and again.")] = False,
    fault_script: Annotated[
        Path | None, typer.Option(help='JSON lines {"at_s": 5, "fault": "drop", ...} run from the start.')
    ] = None,
    control: Annotated[bool, typer.Option(help="Serve POST /_control/faults/{name}.")] = True,
    history: Annotated[int, typer.Option(help="Trades and quotes kept per symbol for REST.")] = 1_000,
    iex_symbol_limit: Annotated[
        int, typer.Option(help="Trades+quotes symbols per iex session before 405; 0 = no limit.")
    ] = DEFAULT_SYMBOL_LIMITS["iex"],
    key: Annotated[str | None, typer.Option(help="Required API key (default: accept any).")] = None,
    secret: Annotated[str | None, typer.Option(help="Required API secret (default: accept any).")] = None,
    log_level: Annotated[str, typer.Option(help="Log level (stderr).")] = "INFO",
) -> None:
    """Serve ws://HOST:PORT/v2/{iex,sip,delayed_sip,test} and http://HOST:PORT/v2/stocks/... until interrupted.

    Prints exactly one line to stdout once bound: ``tickwire-feed listening on ws://HOST:PORT/v2/{feed}``.
    """
    from alpaca_feed.fault_script import load_fault_script
    from alpaca_feed.server import AlpacaFeedServer
    from tickwire.logging import configure_logging  # imported late: only the CLI configures logging

    configure_logging(log_level)
    if calendar not in CALENDARS:
        raise typer.BadParameter(f"calendar must be one of {', '.join(CALENDARS)}")
    try:
        plans = [BurstPlan.parse(spec) for spec in burst or ()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    replay_speed = _speed(speed)
    if replay is not None and not replay.is_file():
        raise typer.BadParameter(f"no recording at {replay}")
    steps = load_fault_script(fault_script) if fault_script is not None else []
    chosen = _symbol_list(symbols)
    server = AlpacaFeedServer(
        host=host,
        port=port,
        rate_per_symbol=rate,
        seed=seed,
        key=key,
        secret=secret,
        universe=chosen or DEFAULT_UNIVERSE,
        simulate=chosen,
        calendar=calendar,
        events=None if rare_events else EventRates.none(),
        history_limit=history,
        control=control,
        bursts=plans,
        symbol_limits={"iex": iex_symbol_limit or None},
    )

    async def main() -> None:
        stop = stop_on_signals()
        await server.start()
        # A dict per message: rarer, larger young-generation collections cost ~10-20% less CPU,
        # and nothing allocated at start-up needs collecting again.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
        gc.freeze()
        try:
            # The launcher parses the port from this line, so its format is a contract.
            print(f"tickwire-feed listening on ws://{host}:{server.port}/v2/{{feed}}", flush=True)
            if steps:
                server.run_fault_script(steps)
            if replay is not None:
                server.replay(replay, speed=replay_speed, shift_to_now=shift_to_now, loop=loop)
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(main())


@feed_app.command()
def record(
    out: Annotated[Path, typer.Argument(help="File to write: .jsonl (JSON Lines) or .msgpack.")],
    symbols: Annotated[str | None, typer.Option(help="Comma list (default: TICKWIRE_SYMBOLS).")] = None,
    channels: Annotated[
        str, typer.Option(help="Comma list of trades, quotes, bars, updatedBars, dailyBars, statuses, lulds.")
    ] = "trades,quotes,bars",
    feed: Annotated[str | None, typer.Option(help="iex, sip, delayed_sip or test (default: ALPACA_FEED).")] = None,
    url: Annotated[str | None, typer.Option(help="Stream URL (default: ALPACA_STREAM_URL, else Alpaca's).")] = None,
    key: Annotated[str | None, typer.Option(help="API key (default: ALPACA_API_KEY).")] = None,
    secret: Annotated[str | None, typer.Option(help="API secret (default: ALPACA_SECRET_KEY).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    log_level: Annotated[str, typer.Option(help="Log level (stderr).")] = "INFO",
) -> None:
    """Record a live Alpaca session (alpaca-py, raw mode) to a file ``feed serve --replay`` plays back."""
    from alpaca_feed.recorder import Recorder
    from tickwire.logging import configure_logging
    from tickwire.settings import ALPACA_STREAM_BASE, AlpacaSettings

    configure_logging(log_level)
    settings = AlpacaSettings()
    key = key or (settings.alpaca_api_key.get_secret_value() if settings.alpaca_api_key else None)
    secret = secret or (settings.alpaca_secret_key.get_secret_value() if settings.alpaca_secret_key else None)
    if not key or not secret:
        raise typer.BadParameter("credentials needed: set ALPACA_API_KEY and ALPACA_SECRET_KEY, or --key/--secret")
    stream_url = url or (ALPACA_STREAM_BASE + feed if feed else settings.stream_url)
    chosen = _symbol_list(symbols) or tuple(settings.symbols)
    try:
        recorder = Recorder(
            out,
            key=key,
            secret=secret,
            url=stream_url,
            symbols=chosen,
            channels=tuple(part.strip() for part in channels.split(",") if part.strip()),
            fmt=RecordingFormat.for_path(out),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def main() -> int:
        stop = stop_on_signals()
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, stop.set)
        typer.echo(f"recording {', '.join(chosen)} from {stream_url} to {out} (Ctrl-C stops)", err=True)
        return await recorder.run(stop)

    written = asyncio.run(main())
    typer.echo(f"recorded {written} messages to {out}", err=True)
