"""Replay handlers: the live stages, run in-process against a run's names (one handler, two drivers).

Which stage replays which topic is the stage registry's (``processors/registry.py``): a stage's entry names
the topics a run of it reads and the outputs it keeps; the run drives the stage's own I/O side over its own
pure handler (:class:`~processors.stage_replay.StageReplay`) into the run's Redis namespace and suffixed topics.
This module is the one place the tools import the processors (pyproject ``ignore_imports``).
"""

from __future__ import annotations

from collections.abc import Iterable

from processors.registry import replayed_by
from processors.stage_replay import replay_handlers
from tickwire.runtime.replay import HandlerCounts, ReplayContext, ReplayHandler

__all__ = ["HandlerCounts", "ReplayContext", "ReplayHandler", "handlers_for", "replayable_topics"]


def handlers_for(context: ReplayContext, topics: Iterable[str]) -> list[ReplayHandler]:
    """The replay handler of every stage that reads one of ``topics`` (ValueError if no stage does)."""
    return list(replay_handlers(context, topics))


def replayable_topics(app_id: str) -> list[str]:
    """Every topic some stage's replay reads, for processors named ``app_id``."""
    return list(replayed_by(app_id))
