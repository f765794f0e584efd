"""Local Alpaca market-data feed: a WebSocket server speaking Alpaca's v2 stock-stream protocol.

Used by the embedded demo (``make run``), end-to-end tests (which inject known quotes) and benchmarks;
the real alpaca-py ``StockDataStream`` connects to it with ``url_override=server.url()``.
"""

from alpaca_feed.market import MarketModel
from alpaca_feed.server import AlpacaFeedServer

__all__ = ["AlpacaFeedServer", "MarketModel"]
