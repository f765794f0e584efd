"""The seeds' direct design, as the baseline: an alpaca-py handler that validates and writes Redis inline.

This is ADR-0010's ``AlpacaMarketDataStream._handle_quote`` (seed 004) with nothing added: the real
``StockDataStream`` hands each ``Quote`` to the handler, which checks it, then awaits ``SETEX
price:{SYMBOL}`` and ``PUBLISH price.updated.{SYMBOL}`` before the client reads the next message. No
Kafka, no batching. The only addition is a counter, written to Redis ``bench:direct`` every 50 ms by
a thread (not per quote), so the benchmark can tell what was handled.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time

from alpaca.data.live import StockDataStream
from alpaca.data.models import Quote
from redis import Redis as SyncRedis
from redis.asyncio import Redis

COUNTS_KEY = "bench:direct"
REPORT_INTERVAL_S = 0.05
PRICE_TTL_S = 300

log = logging.getLogger("direct_design")


class DirectMarketDataStream:
    """Quote in, ``price:{SYMBOL}`` and ``price.updated.{SYMBOL}`` out, inline and one at a time."""

    def __init__(self, stream_url: str, redis_url: str, symbols: list[str]) -> None:
        self.redis = Redis.from_url(redis_url)
        self.stream = StockDataStream("bench", "bench", url_override=stream_url)
        self.stream.subscribe_quotes(self._handle_quote, *symbols)
        self.handled = 0
        self.rejected = 0

    async def _handle_quote(self, quote: Quote) -> None:
        # The seed's handler: mid, a 5-minute SETEX, then the update event. Validation as the seed's
        # "zero crashes from malformed quotes" asks: a two-sided, uncrossed market.
        try:
            if quote.bid_price <= 0 or quote.ask_price <= 0 or quote.ask_price < quote.bid_price:
                self.rejected += 1
                return
            symbol = quote.symbol
            mid_price = (quote.bid_price + quote.ask_price) / 2
            price_data = {
                "symbol": symbol,
                "bid": float(quote.bid_price),
                "ask": float(quote.ask_price),
                "mid": float(mid_price),
                "bid_size": quote.bid_size,
                "ask_size": quote.ask_size,
                "timestamp": quote.timestamp.isoformat(),
                "exchange": quote.bid_exchange,
            }
            await self.redis.setex(f"price:{symbol}", PRICE_TTL_S, json.dumps(price_data))
            await self.redis.publish(
                f"price.updated.{symbol}",
                json.dumps({"symbol": symbol, "price": mid_price, "timestamp": quote.timestamp.isoformat()}),
            )
        except Exception as exc:  # the seed logs and carries on
            log.error("Error handling quote for %s: %s", quote.symbol, exc)
        finally:
            self.handled += 1

    def report_forever(self, redis_url: str) -> None:
        """Write the handled count to Redis (runs in a thread: the stream owns the event loop)."""
        client = SyncRedis.from_url(redis_url)
        while True:
            client.hset(COUNTS_KEY, mapping={"handled": self.handled, "rejected": self.rejected,
                                             "at_ns": time.time_ns()})
            time.sleep(REPORT_INTERVAL_S)  # reporting period


def main() -> None:
    """CLI entry point: ``python -m bench.direct_design --url ws://... --redis redis://... --symbols A,B``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Alpaca stream URL (the local feed's)")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--symbols", required=True, help="comma list")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    service = DirectMarketDataStream(args.url, args.redis, args.symbols.split(","))
    threading.Thread(target=service.report_forever, args=(args.redis,), daemon=True).start()
    service.stream.run()


if __name__ == "__main__":
    main()
