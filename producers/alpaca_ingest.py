"""AlpacaIngest: the real alpaca-py StockDataStream, subscribed to trades/quotes/bars, feeding Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from alpaca.data.live import StockDataStream

from producers.kafka_publisher import RawEventPublisher
from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.settings import Settings

log = structlog.get_logger(__name__)

# The local feed accepts any credentials; alpaca-py needs some to send.
LOCAL_CREDENTIALS = ("tickwire-local", "tickwire-local")


class AlpacaIngest:
    """Streams Alpaca market data into the raw topics until :meth:`stop`.

    Handlers only enqueue (alpaca-py awaits them inline, and a slow handler gets the socket
    disconnected as a slow client); raw mode keeps the exchange timestamp's nanoseconds.
    """

    def __init__(self, settings: Settings, publisher: RawEventPublisher) -> None:
        self.settings = settings
        self.publisher = publisher
        key, secret = LOCAL_CREDENTIALS
        if settings.has_alpaca_credentials:
            key = settings.alpaca_api_key.get_secret_value()  # type: ignore[union-attr]
            secret = settings.alpaca_secret_key.get_secret_value()  # type: ignore[union-attr]
        self.stream = StockDataStream(key, secret, raw_data=True, url_override=settings.stream_url)
        self._task: asyncio.Task[None] | None = None

    async def _on_message(self, message: dict[str, Any]) -> None:
        self.publisher.offer(message)

    def start(self) -> None:
        """Register handlers (before the loop starts: alpaca-py spins without any) and connect."""
        symbols = self.settings.symbols
        self.stream.subscribe_trades(self._on_message, *symbols)
        self.stream.subscribe_quotes(self._on_message, *symbols)
        self.stream.subscribe_bars(self._on_message, *symbols)
        log.info("ingest starting", url=self.settings.stream_url, symbols=list(symbols))
        self._task = asyncio.create_task(self.stream._run_forever(), name="alpaca-stream")

    async def stop(self, timeout: float = 6.0) -> None:
        """Stop the stream and close the socket (cancelling alpaca-py's task alone leaves it open)."""
        if self._task is None:
            return
        try:
            await self.stream.stop_ws()
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            await self.stream.close()


async def run_ingest(settings: Settings, stop: asyncio.Event) -> None:
    """Run the ingest until ``stop`` is set, then flush what is queued and exit."""
    if not settings.kafka_bootstrap_servers:
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS is not set: start the ingest through `tickwire run`")
    publisher = RawEventPublisher(
        bootstrap_list(settings.kafka_bootstrap_servers), settings.ingest_queue_size, **aiokafka_security(settings)
    )
    await publisher.start()
    ingest = AlpacaIngest(settings, publisher)
    ingest.start()
    stats_task = asyncio.create_task(_log_stats(publisher), name="ingest-stats")
    try:
        await stop.wait()
    finally:
        log.info("ingest stopping")
        stats_task.cancel()
        await ingest.stop()
        await publisher.close()
        log.info("ingest stopped", **publisher.counters.as_dict())


async def _log_stats(publisher: RawEventPublisher, every_s: float = 10.0) -> None:
    while True:
        await asyncio.sleep(every_s)  # a reporting period, not synchronisation
        log.info("ingest stats", queue_depth=publisher.queue.qsize(), **publisher.counters.as_dict())
