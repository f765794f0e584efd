"""Previous-session closes from Alpaca's REST snapshots (``prevDailyBar``), once per symbol and session.

The stream carries today's daily bar only, so during a session nothing on the topics or in Redis holds
yesterday's close; Alpaca's snapshot endpoint (or the local feed's copy of it) does.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation

import structlog
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockSnapshotRequest
from requests import RequestException

from consumers.api.errors import one_line
from consumers.api.settings import ApiSettings
from schemas.timestamps import parse_ns

log = structlog.get_logger(__name__)

LOCAL_CREDENTIALS = ("local", "local")  # the local feed accepts any key pair
REST_FEEDS = {"iex": DataFeed.IEX, "sip": DataFeed.SIP}


class AlpacaPreviousCloses:
    """``previous_close(symbol, session_start_ns)`` from the snapshot endpoint; None when REST is not
    configured (no ALPACA_DATA_URL and no credentials) or does not answer."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._client: StockHistoricalDataClient | None = None
        self._cache: dict[tuple[str, int], Decimal] = {}

    @property
    def configured(self) -> bool:
        """Whether there is a REST API to ask."""
        return bool(self.settings.alpaca_data_url) or self.settings.has_alpaca_credentials

    async def previous_close(self, symbol: str, session_start_ns: int) -> Decimal | None:
        """The close of the last daily bar before ``session_start_ns``."""
        if not self.configured:
            return None
        cached = self._cache.get((symbol, session_start_ns))
        if cached is not None:
            return cached
        try:
            answer = await asyncio.to_thread(self._snapshot, symbol)
            bar = answer.get(symbol, {}).get("prevDailyBar") or {}
            if not bar or parse_ns(str(bar["t"])) >= session_start_ns:
                return None
            close = Decimal(str(bar["c"]))
        except (APIError, RequestException, KeyError, ValueError, InvalidOperation, AttributeError) as exc:
            log.warning("previous close unavailable from Alpaca REST", symbol=symbol, error=one_line(exc))
            return None
        exponent = close.as_tuple().exponent
        close = close.quantize(Decimal("0.01")) if isinstance(exponent, int) and exponent > -2 else close
        self._cache[(symbol, session_start_ns)] = close
        return close

    def _snapshot(self, symbol: str) -> dict[str, dict[str, dict[str, object]]]:
        if self._client is None:
            key, secret = LOCAL_CREDENTIALS
            if self.settings.alpaca_api_key is not None and self.settings.alpaca_secret_key is not None:
                key = self.settings.alpaca_api_key.get_secret_value()
                secret = self.settings.alpaca_secret_key.get_secret_value()
            self._client = StockHistoricalDataClient(key, secret, raw_data=True,
                                                     url_override=self.settings.alpaca_data_url)
        request = StockSnapshotRequest(symbol_or_symbols=symbol, feed=REST_FEEDS.get(self.settings.alpaca_feed))
        return self._client.get_stock_snapshot(request)  # type: ignore[return-value]
