"""Settings of the ingest (``tickwire ingest``): reconnects, silence, gaps, the lease, metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from producers.feeds import DEFAULT_FEED_SOURCE, FEED_SOURCE_VARIABLE, FEED_SOURCES
from tickwire.settings import AlpacaSettings

MarketHours = Literal["always", "extended", "regular"]
DEFAULT_INGEST_METRICS_PORT = 9101  # Prometheus' convention: one well-known port per exporter (processor: 9102)


class IngestSettings(AlpacaSettings):
    """The ingest: Alpaca -> the raw topics."""

    feed_source: str = Field(DEFAULT_FEED_SOURCE, validation_alias=FEED_SOURCE_VARIABLE,
                             description=f"the feed the ingest streams: {', '.join(FEED_SOURCES)}")

    # A 10x burst for 1 s at 1,000 quotes/s is 10,000 quotes on top of the steady flow; twice that fits,
    # at ~680 bytes per queued quote (measured with tracemalloc): ~13 MiB when full.
    ingest_queue_size: int = Field(
        20_000, gt=0, validation_alias="TICKWIRE_INGEST_QUEUE_SIZE",
        description="bound of the queue between the socket and Kafka (a full queue is counted as a gap)")
    # Reconnects: base, 2x base, 4x base ... up to the max, minus up to `jitter` of it; a success resets.
    reconnect_base_s: float = Field(5.0, gt=0, validation_alias="TICKWIRE_RECONNECT_BASE_SECONDS",
                                    description="first reconnect delay; doubles with each failure in a row")
    reconnect_max_s: float = Field(300.0, gt=0, validation_alias="TICKWIRE_RECONNECT_MAX_SECONDS",
                                   description="cap of the reconnect delay")
    reconnect_jitter: float = Field(0.2, ge=0, lt=1, validation_alias="TICKWIRE_RECONNECT_JITTER",
                                    description="each delay is shortened by a random fraction up to this")
    max_reconnect_attempts: int = Field(
        10, gt=0, validation_alias="TICKWIRE_MAX_RECONNECT_ATTEMPTS",
        description="failures in a row before the ingest reports unhealthy (it keeps trying at the cap)")
    max_symbols: int = Field(30, gt=0, validation_alias="TICKWIRE_MAX_SYMBOLS",
                             description="symbols streamed at once (IEX: 30); more wait as pending")
    mute_after_s: float = Field(60.0, gt=0, validation_alias="TICKWIRE_MUTE_AFTER_SECONDS",
                                description="no data at all this long while the market is open: reconnect")
    quiet_after_s: float = Field(30.0, gt=0, validation_alias="TICKWIRE_QUIET_AFTER_SECONDS",
                                 description="one symbol silent this long while others flow: reported as quiet")
    market_hours: MarketHours | None = Field(
        None, validation_alias="TICKWIRE_MARKET_HOURS",
        description="when silence counts: always, extended or regular (default: extended; always without credentials)")
    gap_settle_s: float = Field(5.0, gt=0, validation_alias="TICKWIRE_GAP_SETTLE_SECONDS",
                                description="after a reconnect, how long a gap waits for each symbol's first message")
    backfill_max_window_s: float = Field(3600.0, gt=0, validation_alias="TICKWIRE_BACKFILL_MAX_WINDOW_SECONDS",
                                         description="longest gap window repaired over REST (its most recent part)")
    backfill_symbols_per_request: int = Field(
        5, ge=1, validation_alias="TICKWIRE_BACKFILL_SYMBOLS_PER_REQUEST",
        description="symbols per REST read when repairing a gap (each chunk published before the next is read)")
    ingest_lease_ttl_s: float = Field(5.0, ge=0.2, validation_alias="TICKWIRE_INGEST_LEASE_TTL_SECONDS",
                                      description="TTL of the ingest lease: how soon a standby takes over")
    ingest_metrics_port: int = Field(DEFAULT_INGEST_METRICS_PORT, ge=0, le=65535,
                                     validation_alias="TICKWIRE_INGEST_METRICS_PORT",
                                     description="Prometheus /metrics port of the ingest; 0 = off")

    @field_validator("feed_source")
    @classmethod
    def _known_feed(cls, value: str) -> str:
        name = value.strip().lower()
        if name not in FEED_SOURCES:
            raise ValueError(f"{value!r} is not a feed the ingest knows (choices: {', '.join(FEED_SOURCES)})")
        return name

    @property
    def effective_market_hours(self) -> MarketHours:
        """When silence means a mute socket: set, or "always" without credentials (a local feed, 24/7)."""
        if self.market_hours is not None:
            return self.market_hours
        return "always" if self.alpaca_feed == "test" or not self.has_alpaca_credentials else "extended"
