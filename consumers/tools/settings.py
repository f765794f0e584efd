"""Settings of the debugging tools (``tickwire tail``, ``replay``, ``diff``, ``check``, ``status``, ``position``)."""

from __future__ import annotations

from pydantic import Field

from tickwire.settings import TickwireSettings


class ToolSettings(TickwireSettings):
    """The tools read what the pipeline wrote; replay runs also write under their own names."""

    replay_ttl_s: int = Field(7 * 86_400, gt=0, validation_alias="TICKWIRE_REPLAY_TTL_SECONDS",
                              description="how long a replay run's Redis keys (replay:{run}:*) live")
