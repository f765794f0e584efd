"""Settings of ``tickwire run``: everything its children read, plus the local feed's rate."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from consumers.api.settings import ApiSettings
from processors.settings import ProcessorSettings
from producers.settings import IngestSettings


class RunSettings(IngestSettings, ProcessorSettings, ApiSettings):
    """The whole pipeline in one process tree; each child reads its own part from the same environment.

    The price stage and the P&L stage run as two processes (``processor``, ``processor-pnl``): the P&L
    fan-out then never delays a price on its way to Redis (docs/performance.md)."""

    feed_rate_per_symbol: float = Field(5.0, ge=0, validation_alias="TICKWIRE_FEED_RATE",
                                        description="local feed: quotes per second per symbol")
    pnl_metrics_port: int = Field(9112, ge=0, le=65535, validation_alias="TICKWIRE_PNL_METRICS_PORT",
                                  description="Prometheus /metrics port of the P&L stage's process; 0 = off")
    cache_dir: Path | None = Field(None, validation_alias="TICKWIRE_CACHE_DIR",
                                   description="where the embedded Kafka broker's jars are kept once fetched "
                                               "(unset: $XDG_CACHE_HOME/tickwire, else ~/.cache/tickwire)")
