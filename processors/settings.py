"""Settings of the processors (``tickwire processor``): which registered stages run, and how they fetch and commit."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tickwire.settings import TickwireSettings

AT_LEAST_ONCE_COMMIT_S = 1.0
# Kafka Streams' commit interval under exactly once: downstream readers wait for the commit.
EXACTLY_ONCE_COMMIT_S = 0.1


class ProcessorSettings(TickwireSettings):
    """One processor process: which stages it runs, how they fetch and commit, the P&L cadence."""

    # The names are the stage registry's (processors/registry.py); unset, the pipeline's two stages run.
    stages: Annotated[tuple[str, ...], NoDecode] = Field(
        ("price", "pnl"), validation_alias="TICKWIRE_PROCESSOR_STAGES",
        description="which stages this process runs: price, pnl or both (price,pnl)")
    price_batch_max: int = Field(
        500, gt=0, validation_alias="TICKWIRE_PROCESSOR_BATCH_SIZE",
        description="most records a stage takes from one fetch (it takes whatever the fetch returned, up to this)")
    fetch_wait_s: float = Field(
        0.5, gt=0, validation_alias="TICKWIRE_FETCH_WAIT_SECONDS",
        description="how long the price stage's fetch may wait at the broker when no record is there (the "
                    "broker answers as soon as one arrives: longer = fewer empty fetches, not more latency)")
    pnl_fetch_wait_s: float = Field(
        0.5, gt=0, validation_alias="TICKWIRE_PNL_FETCH_WAIT_SECONDS",
        description="the same for the P&L stage's fetch over its four inputs")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", validation_alias="TICKWIRE_PROCESSING_GUARANTEE",
        description="at_least_once: a crash may send a stage's Kafka outputs again; exactly_once: each stage's "
                    "outputs and offsets commit in one Kafka transaction (readers see outputs only once committed)")
    processor_instance: str = Field(
        "0", min_length=1, validation_alias="TICKWIRE_PROCESSOR_INSTANCE",
        description="this process's name among the processes running the same stages: exactly_once fences an "
                    "earlier process with the same name (give each concurrent process its own)")
    commit_interval: float | None = Field(
        None, gt=0, validation_alias="TICKWIRE_COMMIT_INTERVAL_SECONDS",
        description="how often each stage commits offsets (and writes its state tables' changelogs); unset: 1 s, "
                    "or 0.1 s under exactly_once, where a commit is what makes the outputs visible")

    @property
    def commit_interval_s(self) -> float:
        """The commit interval in force (see ``commit_interval``)."""
        if self.commit_interval is not None:
            return self.commit_interval
        return EXACTLY_ONCE_COMMIT_S if self.processing_guarantee == "exactly_once" else AT_LEAST_ONCE_COMMIT_S
    pnl_mark_interval_s: float = Field(
        0.02, ge=0, validation_alias="TICKWIRE_PNL_MARK_INTERVAL_SECONDS",
        description="a symbol's positions are revalued at most this often, at its newest price (0 = every batch)")
    pnl_min_change: Decimal = Field(
        Decimal("0"), ge=0, validation_alias="TICKWIRE_PNL_MIN_CHANGE",
        description="conflation: emit a revaluation when P&L moved at least this many dollars (0 = every change)")
    pnl_min_change_bps: Decimal = Field(
        Decimal("0"), ge=0, validation_alias="TICKWIRE_PNL_MIN_CHANGE_BPS",
        description="conflation: or at least this many basis points of the position's cost")
    pnl_max_delay_s: float = Field(
        1.0, gt=0, validation_alias="TICKWIRE_PNL_MAX_DELAY_SECONDS",
        description="conflation: a held-back change goes out after at most this long")
    # 10,000: a few minutes of a busy symbol's price changes (50/s is 3.3 min) at about 2 MB of Redis per stream
    # when full, 200 B an entry; a quiet symbol's stream holds far less, and expires with its price.
    redis_stream_maxlen: int = Field(
        10_000, gt=0, validation_alias="TICKWIRE_REDIS_STREAM_MAXLEN",
        description="cap of each price.stream.{SYMBOL} and pnl.stream.{account} (XADD MAXLEN ~, so Redis may keep "
                    "up to ~100 more): how far back a reader that was away can resume; further back it gets a gap")
    unsubscribe_grace_s: float = Field(
        60.0, ge=0, validation_alias="TICKWIRE_UNSUBSCRIBE_GRACE_SECONDS",
        description="after a symbol's last position closes, wait this long before unsubscribing it")
    processor_metrics_port: int = Field(
        9102, ge=0, le=65535, validation_alias="TICKWIRE_PROCESSOR_METRICS_PORT",
        description="Prometheus /metrics port of the processor; 0 = off")
    processor_uvloop: bool = Field(True, validation_alias="TICKWIRE_PROCESSOR_UVLOOP",
                                   description="run on uvloop (false: asyncio's own loop)")

    @field_validator("stages", mode="before")
    @classmethod
    def _split_stages(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        stages = tuple(dict.fromkeys(str(s).strip().lower() for s in items if str(s).strip()))
        from processors.registry import stage_names  # the registry imports the stages, which type with this class

        known = stage_names()
        if not stages:
            raise ValueError(f"name at least one stage (example: {','.join(known)})")
        unknown = [s for s in stages if s not in known]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(map(repr, unknown))}: the stages are {', '.join(known)} "
                             f"(example: {','.join(known)})")
        return stages
