"""The ``tickwire`` command line: run the pipeline or one of its components."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import typer

from alpaca_feed.cli import feed_app
from consumers.consistency_cli import check_command
from consumers.tools.cli import register_tool_commands
from tickwire.cli_errors import enable_debug, load_settings, reported_errors
from tickwire.cli_help import TickwireGroup, reads
from tickwire.logging import configure_logging
from tickwire.signals import stop_on_signals

# No locals in tracebacks: they would print settings (and their secrets).
app = typer.Typer(help="tickwire: real-time market data and P&L on Kafka and Redis.", no_args_is_help=True,
                  cls=TickwireGroup, pretty_exceptions_show_locals=False)


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show tracebacks (also TICKWIRE_LOG_LEVEL=debug)")
             ) -> None:
    """tickwire: real-time market data and P&L on Kafka and Redis."""
    if debug:
        enable_debug()


def _run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, int | None]]) -> int:
    async def runner() -> int:
        return (await main(stop_on_signals())) or 0

    return asyncio.run(runner())


@app.command(cls=reads("deploy.settings:RunSettings"))
def run(fresh: bool = typer.Option(False, "--fresh", help="start the embedded Kafka broker empty (its data from "
                                                          "earlier runs, in TICKWIRE_RUN_DIR/kafka, is deleted)")
        ) -> None:
    """Run the whole pipeline in the foreground until Ctrl-C (embedded servers when none configured)."""
    from deploy.settings import RunSettings
    from deploy.stack import run_stack

    settings = load_settings(RunSettings)
    configure_logging("WARNING", settings.log_format)
    raise typer.Exit(_run_until_signalled(lambda stop: run_stack(settings, stop, fresh)))


@app.command(cls=reads("producers.settings:IngestSettings"))
def ingest() -> None:
    """Stream Alpaca trades, quotes and bars into the raw Kafka topics."""
    from producers.alpaca_ingest import run_ingest
    from producers.settings import IngestSettings
    from tickwire.heap import freeze_startup_heap

    settings = load_settings(IngestSettings)
    configure_logging(settings.log_level, settings.log_format)
    freeze_startup_heap()
    raise typer.Exit(_run_until_signalled(lambda stop: run_ingest(settings, stop)))


@app.command(cls=reads("processors.settings:ProcessorSettings"))
def processor() -> None:
    """Run a processor: the price stage and the P&L stage (more processes share the partitions)."""
    from processors.settings import ProcessorSettings
    from processors.worker import main

    main(load_settings(ProcessorSettings))


@app.command("create-topics", cls=reads("processors.settings:ProcessorSettings"))
def create_topics() -> None:
    """Create tickwire's topics and the processors' internal topics on KAFKA_BOOTSTRAP_SERVERS (with their
    partitions, retention and compaction; existing topics are left as they are)."""
    from processors.settings import ProcessorSettings
    from schemas.topics import ALL_TOPICS, internal_topics
    from tickwire.topic_admin import ensure_topics_of

    settings = load_settings(ProcessorSettings)
    configure_logging(settings.log_level, settings.log_format)
    if not settings.kafka_bootstrap_servers:
        raise typer.BadParameter("KAFKA_BOOTSTRAP_SERVERS is not set")
    with reported_errors():
        created = asyncio.run(ensure_topics_of(settings, [*ALL_TOPICS, *internal_topics(settings.processor_app_id)]))
    typer.echo(f"created: {', '.join(created) or 'nothing (all topics exist)'}")


@app.command(cls=reads("consumers.api.settings:ApiSettings"))
def api() -> None:
    """Serve the market-data API and the dashboard on TICKWIRE_API_HOST:TICKWIRE_API_PORT (127.0.0.1:8004)."""
    from consumers.api.server import serve_forever
    from consumers.api.settings import ApiSettings
    from tickwire.heap import freeze_startup_heap

    settings = load_settings(ApiSettings)
    configure_logging(settings.log_level, settings.log_format)
    freeze_startup_heap()
    raise typer.Exit(serve_forever(settings))


@app.command(cls=reads("consumers.tools.settings:ToolSettings"))
def status(
    account: str = typer.Option("default", help="whose positions to value"),
    once: bool = typer.Option(False, "--once", help="print one reading and exit"),
) -> None:
    """A live table of prices and real-time P&L, read from REDIS_URL (Ctrl-C quits)."""
    from consumers.status_table import run_status
    from consumers.tools.cli import _settings

    settings = _settings(needs=("REDIS_URL",))  # `make run` in another terminal: its embedded Redis
    raise typer.Exit(_run_until_signalled(lambda stop: run_status(settings, account, stop, once=once)))


position_app = typer.Typer(help="Report positions to the positions topic.", no_args_is_help=True, cls=TickwireGroup)


# ignore_unknown_options: a short's negative QTY ("-50") is an argument, not an option.
@position_app.command("set", context_settings={"ignore_unknown_options": True},
                      cls=reads("consumers.tools.settings:ToolSettings"))
def position_set(
    symbol: str = typer.Argument(..., help="ticker, e.g. AAPL"),
    qty: str = typer.Argument(..., help="quantity: negative for a short, 0 closes"),
    avg_price: str = typer.Argument(..., help="average entry price"),
    account: str = typer.Option("default", help="account id"),
) -> None:
    """Publish SYMBOL's position (QTY at AVG_PRICE) to the positions topic on KAFKA_BOOTSTRAP_SERVERS."""
    from consumers.api.errors import ServiceUnavailable
    from consumers.client import position_record, publish_position
    from consumers.tools.cli import _settings
    from tickwire.kafka import aiokafka_security

    settings = _settings()
    try:
        position = position_record(symbol, qty, avg_price, account)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        asyncio.run(publish_position(settings.kafka_bootstrap_servers, position, aiokafka_security(settings)))
    except ServiceUnavailable as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"published {position.symbol} qty={position.qty} avg_entry_price={position.avg_entry_price} "
               f"account={position.account}")


app.add_typer(position_app, name="position")
app.add_typer(feed_app, name="feed", help="The local Alpaca-protocol market-data feed.")
register_tool_commands(app)  # tail, replay, diff (consumers/tools/)
# The consistency oracle (consumers/consistency.py).
app.command("check", cls=reads("consumers.tools.settings:ToolSettings"))(check_command)


def main() -> None:
    """Console-script entry point: a user's mistake anywhere below is one line and exit 2."""
    with reported_errors():
        app(prog_name="tickwire")  # also under `python -m tickwire`
