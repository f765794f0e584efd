"""``tickwire feed serve``: run the local Alpaca feed until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from deploy.alpaca_feed.server import AlpacaFeedServer

feed_app = typer.Typer(
    help="Local Alpaca market-data feed (Alpaca v2 stock-stream protocol, synthetic data).",
    no_args_is_help=True,
    add_completion=False,
)


@feed_app.callback()
def _feed() -> None:
    """Local Alpaca market-data feed."""  # a callback keeps `serve` a subcommand even though it is alone


@feed_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free port.")] = 8765,
    rate: Annotated[float, typer.Option(help="Synthetic quotes per second per symbol; 0 = none.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 0,
    key: Annotated[str | None, typer.Option(help="Required API key (default: accept any).")] = None,
    secret: Annotated[str | None, typer.Option(help="Required API secret (default: accept any).")] = None,
    log_level: Annotated[str, typer.Option(help="Log level (stderr).")] = "INFO",
) -> None:
    """Serve ws://HOST:PORT/v2/{iex,sip,delayed_sip,test} until interrupted.

    Prints exactly one line to stdout once bound: ``tickwire-feed listening on ws://HOST:PORT/v2/{feed}``.
    """
    from tickwire.logging import configure_logging  # imported late: only the CLI configures logging

    configure_logging(level=log_level)
    server = AlpacaFeedServer(host=host, port=port, rate_per_symbol=rate, seed=seed, key=key, secret=secret)
    asyncio.run(_serve(server, host))


async def _serve(server: AlpacaFeedServer, host: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        # The launcher parses the port from this line, so its format is a contract.
        print(f"tickwire-feed listening on ws://{host}:{server.port}/v2/{{feed}}", flush=True)
        await stop.wait()
    finally:
        await server.stop()
