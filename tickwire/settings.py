"""Every setting tickwire reads, in one place (environment variables, documented in the README)."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.symbols import normalize_symbol

AlpacaFeed = Literal["iex", "sip", "delayed_sip", "test"]

ALPACA_STREAM_BASE = "wss://stream.data.alpaca.markets/v2/"


class Settings(BaseSettings):
    """tickwire configuration. Every field names the environment variable that sets it."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    alpaca_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_API_KEY", "APCA_API_KEY_ID")
    )
    alpaca_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_SECRET_KEY", "APCA_API_SECRET_KEY")
    )
    alpaca_feed: AlpacaFeed = Field("iex", validation_alias="ALPACA_FEED")
    alpaca_stream_url: str | None = Field(None, validation_alias="ALPACA_STREAM_URL")
    alpaca_data_url: str | None = Field(None, validation_alias="ALPACA_DATA_URL")

    kafka_bootstrap_servers: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    # A managed Kafka (Confluent Cloud, MSK, Redpanda Cloud, Aiven) needs TLS and SASL; see docs/deploy.md.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: Path | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")  # else the system CAs
    # How long a replay run's Redis keys live (`tickwire replay` never writes live keys).
    replay_ttl_seconds: int = Field(7 * 86_400, gt=0, validation_alias="TICKWIRE_REPLAY_TTL_SECONDS")

    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        ("AAPL", "MSFT", "GOOGL"), validation_alias="TICKWIRE_SYMBOLS"
    )
    price_ttl_seconds: int = Field(300, gt=0, validation_alias="TICKWIRE_PRICE_TTL_SECONDS")
    # A quote whose exchange time is further than this from its receive time is dead-lettered as stale.
    max_quote_age_seconds: float = Field(60.0, gt=0, validation_alias="TICKWIRE_MAX_QUOTE_AGE_SECONDS")
    topic_partitions: int = Field(4, gt=0, validation_alias="TICKWIRE_TOPIC_PARTITIONS")
    # Copies of each partition on a multi-broker cluster (3 on managed Kafka); 1 for a single node.
    topic_replication: int = Field(1, gt=0, validation_alias="TICKWIRE_TOPIC_REPLICATION")
    ingest_queue_size: int = Field(10_000, gt=0, validation_alias="TICKWIRE_INGEST_QUEUE_SIZE")
    # Ingest reconnects: base, 2x base, 4x base ... up to the max, minus up to `jitter` of it; a success resets.
    reconnect_base_seconds: float = Field(5.0, gt=0, validation_alias="TICKWIRE_RECONNECT_BASE_SECONDS")
    reconnect_max_seconds: float = Field(300.0, gt=0, validation_alias="TICKWIRE_RECONNECT_MAX_SECONDS")
    reconnect_jitter: float = Field(0.2, ge=0, lt=1, validation_alias="TICKWIRE_RECONNECT_JITTER")
    # After this many failures in a row the ingest reports unhealthy and keeps trying at the max delay.
    max_reconnect_attempts: int = Field(10, gt=0, validation_alias="TICKWIRE_MAX_RECONNECT_ATTEMPTS")
    # The feed's per-connection symbol limit (IEX: 30 for trades and quotes).
    max_symbols: int = Field(30, gt=0, validation_alias="TICKWIRE_MAX_SYMBOLS")
    # No data at all on the socket for this long (market open, some symbol not halted): it is mute, reconnect.
    mute_after_seconds: float = Field(60.0, gt=0, validation_alias="TICKWIRE_MUTE_AFTER_SECONDS")
    # One symbol silent this long while others flow: reported as quiet, no reconnect.
    quiet_after_seconds: float = Field(30.0, gt=0, validation_alias="TICKWIRE_QUIET_AFTER_SECONDS")
    market_hours: Literal["always", "extended", "regular"] | None = Field(
        None, validation_alias="TICKWIRE_MARKET_HOURS"
    )
    # After a reconnect, how long to wait for each symbol's first message before closing its gap anyway.
    gap_settle_seconds: float = Field(5.0, gt=0, validation_alias="TICKWIRE_GAP_SETTLE_SECONDS")
    backfill_max_window_seconds: float = Field(
        3600.0, gt=0, validation_alias="TICKWIRE_BACKFILL_MAX_WINDOW_SECONDS"
    )
    ingest_lease_ttl_ms: int = Field(5000, ge=200, validation_alias="TICKWIRE_INGEST_LEASE_TTL_MS")
    ingest_metrics_port: int = Field(0, ge=0, le=65535, validation_alias="TICKWIRE_INGEST_METRICS_PORT")
    # Prometheus latency histograms of the processor (processors/latency.py); 0 = not served.
    processor_metrics_port: int = Field(0, ge=0, le=65535, validation_alias="TICKWIRE_PROCESSOR_METRICS_PORT")
    processor_app_id: str = Field("tickwire-processor", validation_alias="TICKWIRE_PROCESSOR_APP_ID")
    # Batches amortise Faust's and each round trip's fixed cost; bench: 20 ms/500 took 30-40% less CPU per
    # quote than 5 ms/100 on a busy 2-core machine (docs/performance.md).
    processor_batch_size: int = Field(500, gt=0, validation_alias="TICKWIRE_PROCESSOR_BATCH_SIZE")
    # How long the processor's consumer lets the broker hold a fetch with nothing new (processors/fetch_wait.py).
    consumer_fetch_wait_ms: int = Field(10, gt=0, validation_alias="TICKWIRE_CONSUMER_FETCH_WAIT_MS")
    # Run the processor's Faust worker on uvloop (faster event loop); false = asyncio's own.
    processor_uvloop: bool = Field(True, validation_alias="TICKWIRE_PROCESSOR_UVLOOP")
    # Changelog records/s the latest-price and marks tables may write behind (processors/write_behind.py).
    table_writes_per_second: int = Field(100, gt=0, validation_alias="TICKWIRE_TABLE_WRITES_PER_SECOND")
    # Each batch awaits its Redis and Kafka round trips in turn; 50 ms instead of 20 ms halves how many a
    # second cost, and doubled the sustained rate in `make bench` (docs/performance.md).
    processor_batch_window_ms: float = Field(
        50.0, gt=0, validation_alias="TICKWIRE_PROCESSOR_BATCH_WINDOW_MS"
    )
    # Which price marks a position: the quote's mid, the side a close would hit (bid/ask), or the last trade.
    mark_policy: Literal["mid", "side", "last"] = Field("mid", validation_alias="TICKWIRE_MARK_POLICY")
    # P&L conflation: emit a revaluation only when it moves at least this much (0 = every change) ...
    pnl_min_change: Decimal = Field(Decimal("0"), ge=0, validation_alias="TICKWIRE_PNL_MIN_CHANGE")
    pnl_min_change_bps: Decimal = Field(Decimal("0"), ge=0, validation_alias="TICKWIRE_PNL_MIN_CHANGE_BPS")
    # ... or when this long has passed since the last emission of a changed position.
    pnl_max_delay_ms: float = Field(1000.0, gt=0, validation_alias="TICKWIRE_PNL_MAX_DELAY_MS")
    # A symbol's positions are revalued at most this often, at its newest price (0 = on every batch).
    pnl_mark_interval_ms: float = Field(50.0, ge=0, validation_alias="TICKWIRE_PNL_MARK_INTERVAL_MS")
    unsubscribe_grace_seconds: float = Field(60.0, ge=0, validation_alias="TICKWIRE_UNSUBSCRIBE_GRACE_SECONDS")
    feed_rate_per_symbol: float = Field(5.0, ge=0, validation_alias="TICKWIRE_FEED_RATE")
    run_dir: Path = Field(Path(".tickwire"), validation_alias="TICKWIRE_RUN_DIR")
    log_format: Literal["console", "json"] = Field("console", validation_alias="TICKWIRE_LOG_FORMAT")
    log_level: str = Field("INFO", validation_alias="TICKWIRE_LOG_LEVEL")
    api_host: str = Field("127.0.0.1", validation_alias="TICKWIRE_API_HOST")
    # 0 = any free port (tickwire run picks one and prints it).
    api_port: int = Field(8004, ge=0, le=65535, validation_alias="TICKWIRE_API_PORT")
    # When set, mutating API calls need "Authorization: Bearer <token>".
    api_token: SecretStr | None = Field(None, validation_alias="TICKWIRE_API_TOKEN")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
        symbols = tuple(dict.fromkeys(normalize_symbol(s) for s in items if str(s).strip()))
        if not symbols:
            raise ValueError("TICKWIRE_SYMBOLS must name at least one symbol")
        return symbols

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            protocol = self.kafka_security_protocol
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        return self

    @property
    def has_alpaca_credentials(self) -> bool:
        """True when both an Alpaca key id and secret are configured."""
        return self.alpaca_api_key is not None and self.alpaca_secret_key is not None

    @property
    def uses_local_feed(self) -> bool:
        """The embedded default: no stream URL and no credentials means the local Alpaca feed."""
        return self.alpaca_stream_url is None and not self.has_alpaca_credentials

    @cached_property
    def stream_url(self) -> str:
        """The WebSocket URL the ingest connects to."""
        return self.alpaca_stream_url or ALPACA_STREAM_BASE + self.alpaca_feed

    @property
    def quote_age_limit_seconds(self) -> float:
        """Allowed exchange-to-receive delay; the delayed SIP feed is 15 minutes late by design."""
        return self.max_quote_age_seconds + (900.0 if self.alpaca_feed == "delayed_sip" else 0.0)

    @property
    def effective_market_hours(self) -> Literal["always", "extended", "regular"]:
        """When silence means a mute socket: set, or "always" without credentials (a local feed, 24/7)."""
        if self.market_hours is not None:
            return self.market_hours
        return "always" if self.alpaca_feed == "test" or not self.has_alpaca_credentials else "extended"

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # repr() and str() appear in tracebacks with locals (structlog's rich renderer): no URL password there.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "redis_url" and isinstance(value, str) else value

    def redacted(self) -> dict[str, object]:
        """Settings as a dict safe to log: secrets masked, URL passwords hidden."""
        out = self.model_dump()
        for name in ("alpaca_api_key", "alpaca_secret_key", "api_token"):
            out[name] = "**********" if out[name] is not None else None
        if self.redis_url:
            out["redis_url"] = redact_url(self.redis_url)
        return out


def redact_url(url: str) -> str:
    """Hide the password part of a URL like redis://user:secret@host:6379/0."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides winning (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
