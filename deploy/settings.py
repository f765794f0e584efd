"""Settings of ``tickwire run``: everything its children read, plus the local feed's rate."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from consumers.api.settings import ApiSettings
from processors.settings import ProcessorSettings
from producers.settings import IngestSettings


class RunSettings(IngestSettings, ProcessorSettings, ApiSettings):
    """The whole pipeline in one process tree; each child reads its own part from the same environment."""

    feed_rate_per_symbol: float = Field(5.0, ge=0, validation_alias="TICKWIRE_FEED_RATE",
                                        description="local feed: quotes per second per symbol")
    cache_dir: Path | None = Field(None, validation_alias="TICKWIRE_CACHE_DIR",
                                   description="where the embedded Kafka broker's jars are kept once fetched "
                                               "(unset: ~/.cache/tickwire)")
