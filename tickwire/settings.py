"""The settings every tickwire process shares, and the Alpaca connection; each process adds its own class.

Every field is an environment variable (named in ``validation_alias``); times are in seconds (``_s``
fields, ``_SECONDS`` variables). Process settings live in their room: ``producers/settings.py``
(ingest), ``processors/settings.py``, ``consumers/api/settings.py``, ``consumers/tools/settings.py``
and ``deploy/settings.py`` (``tickwire run``, which starts them all). Reading settings opens nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.valuation import MarkPolicy
from schemas.symbols import normalize_symbol

AlpacaFeed = Literal["iex", "sip", "delayed_sip", "test"]
ALPACA_STREAM_BASE = "wss://stream.data.alpaca.markets/v2/"
REDIS_SCHEMES = ("redis", "rediss", "unix")
DELAYED_SIP_DELAY_S = 900.0

S = TypeVar("S", bound="TickwireSettings")


class TickwireSettings(BaseSettings):
    """What every process reads: where Kafka and Redis are, topic layout, the pipeline's shared rules, logs."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str | None = Field(
        None, validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="host:port[,host:port] of the brokers; unset: `tickwire run` starts the embedded one")
    # A managed Kafka (Confluent Cloud, MSK, Redpanda Cloud, Aiven) needs TLS and SASL; see docs/deploy.md.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL", description="PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", validation_alias="KAFKA_SASL_MECHANISM", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME", description="SASL user")
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias="KAFKA_SASL_PASSWORD", description="SASL password")
    kafka_ssl_cafile: Path | None = Field(
        None, validation_alias="KAFKA_SSL_CAFILE", description="PEM of the brokers' CA (default: the system's)")
    redis_url: str | None = Field(
        None, validation_alias="REDIS_URL",
        description="redis://[:password@]host:port/db (rediss:// for TLS); unset: `tickwire run` starts one")
    topic_partitions: int = Field(
        4, gt=0, validation_alias="TICKWIRE_TOPIC_PARTITIONS", description="partitions of the topics tickwire creates")
    topic_replication: int = Field(
        1, gt=0, validation_alias="TICKWIRE_TOPIC_REPLICATION", description="replicas per partition (3 on a cluster)")
    topic_retention_hours: float = Field(
        24.0, gt=0, validation_alias="TICKWIRE_TOPIC_RETENTION_HOURS",
        description="how long the stream topics tickwire creates keep records (raw feeds, prices, pnl, dead "
                    "letters, marks); positions, subscriptions, closes and changelogs are compacted instead")
    topic_retention_mb: int = Field(
        1024, gt=0, validation_alias="TICKWIRE_TOPIC_RETENTION_MB",
        description="and at most this many MiB per partition of each stream topic (the older records go first)")
    alpaca_feed: AlpacaFeed = Field(
        "iex", validation_alias="ALPACA_FEED", description="iex, sip, delayed_sip or test")
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        ("AAPL", "MSFT", "GOOGL"), validation_alias="TICKWIRE_SYMBOLS",
        description="comma list of symbols to stream, e.g. AAPL,MSFT")
    processor_app_id: str = Field(
        "tickwire-processor", validation_alias="TICKWIRE_PROCESSOR_APP_ID",
        description="consumer-group prefix of the processors; names their internal topics")
    price_ttl_s: int = Field(300, gt=0, validation_alias="TICKWIRE_PRICE_TTL_SECONDS",
                             description="TTL of price:{SYMBOL} and trade:{SYMBOL}")
    max_quote_age_s: float = Field(
        60.0, gt=0, validation_alias="TICKWIRE_MAX_QUOTE_AGE_SECONDS",
        description="a quote this far from its receive time is stale (+15 min on delayed_sip)")
    mark_policy: MarkPolicy = Field(
        "mid", validation_alias="TICKWIRE_MARK_POLICY",
        description="the price that marks a position: mid, side (bid long / ask short) or last trade")
    run_dir: Path = Field(Path(".tickwire"), validation_alias="TICKWIRE_RUN_DIR",
                          description="where `tickwire run` keeps logs, its endpoints file and the embedded "
                                      "broker's data (kafka/)")
    log_format: Literal["console", "json"] = Field("console", validation_alias="TICKWIRE_LOG_FORMAT",
                                                   description="console or json")
    log_level: str = Field("INFO", validation_alias="TICKWIRE_LOG_LEVEL",
                           description="DEBUG, INFO, WARNING or ERROR (DEBUG also shows tracebacks)")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        try:
            symbols = tuple(dict.fromkeys(normalize_symbol(s) for s in items if str(s).strip()))
        except ValueError as exc:
            raise ValueError(f"{exc} (example: AAPL,MSFT,BRK.B)") from None
        if not symbols:
            raise ValueError("name at least one symbol (example: AAPL,MSFT)")
        return symbols

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for server in value.replace(";", ",").split(","):
            host, sep, port = server.strip().removeprefix("kafka://").rpartition(":")
            if not server.strip():
                continue
            if not (sep and host and port.isdigit() and 0 < int(port) < 65536) or "/" in host:
                raise ValueError(f"{server.strip()!r} is not host:port (example: localhost:9092)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value)
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError(f"{value!r} needs a scheme: redis://, rediss:// or unix:// "
                             "(example: redis://localhost:6379/0)")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(f"{value!r} names no host (example: redis://localhost:6379/0)")
        try:
            parts.port  # noqa: B018  (parsing the port validates it)
        except ValueError:
            raise ValueError(f"{value!r} has a bad port (example: redis://localhost:6379/0)") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"):
            raise ValueError(f"{value!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
        return "WARNING" if level == "WARN" else level

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> TickwireSettings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            protocol = self.kafka_security_protocol
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        return self

    @property
    def quote_age_limit_s(self) -> float:
        """Allowed exchange-to-receive delay; the delayed SIP feed is 15 minutes late by design."""
        return self.max_quote_age_s + (DELAYED_SIP_DELAY_S if self.alpaca_feed == "delayed_sip" else 0.0)

    @property
    def debug(self) -> bool:
        """Whether errors show their traceback (TICKWIRE_LOG_LEVEL=DEBUG)."""
        return self.log_level == "DEBUG"

    def __repr_args__(self) -> Any:
        # repr() and str() appear in tracebacks with locals (structlog's rich renderer): no URL password there.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "redis_url" and isinstance(value, str) else value

    def redacted(self) -> dict[str, object]:
        """Settings as a dict safe to log: secrets masked, URL passwords hidden."""
        out = self.model_dump(mode="json")
        for name, value in out.items():
            if isinstance(getattr(self, name), SecretStr) and value is not None:
                out[name] = "**********"
        if self.redis_url:
            out["redis_url"] = redact_url(self.redis_url)
        return out

    def with_overrides(self: S, **values: Any) -> S:
        """A copy with some fields replaced (validated again), e.g. servers found from a running stack."""
        return type(self)(**{**self.model_dump(), **values})

    @classmethod
    def environment(cls) -> Iterator[tuple[str, str, str]]:
        """(variable, default, meaning) of every field, in declaration order (for ``--help`` and the docs)."""
        for field in cls.model_fields.values():
            alias = field.validation_alias
            names = alias.choices if isinstance(alias, AliasChoices) else [alias]
            default = field.default
            shown = "unset" if default is None else ",".join(default) if isinstance(default, tuple) else str(default)
            yield " or ".join(str(n) for n in names), shown, field.description or ""


class AlpacaSettings(TickwireSettings):
    """The Alpaca connection (the ingest, ``tickwire run``, ``feed record``)."""

    alpaca_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_API_KEY", "APCA_API_KEY_ID"), description="Alpaca key id")
    alpaca_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_SECRET_KEY", "APCA_API_SECRET_KEY"), description="Alpaca secret")
    alpaca_stream_url: str | None = Field(
        None, validation_alias="ALPACA_STREAM_URL",
        description="stream URL override; with neither this nor credentials `tickwire run` starts the local feed")
    alpaca_data_url: str | None = Field(
        None, validation_alias="ALPACA_DATA_URL", description="REST URL override (gap repairs read it)")

    @field_validator("alpaca_stream_url", "alpaca_data_url")
    @classmethod
    def _check_url(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        schemes = ("ws", "wss") if info.field_name == "alpaca_stream_url" else ("http", "https")
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            example = ("wss://stream.data.alpaca.markets/v2/iex" if schemes[0] == "ws"
                       else "https://data.alpaca.markets")
            raise ValueError(f"{value!r} is not a {'/'.join(schemes)} URL (example: {example})")
        return value

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


def redact_url(url: str) -> str:
    """Hide the password part of a URL like redis://user:secret@host:6379/0."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
