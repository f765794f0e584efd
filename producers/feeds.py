"""The feeds the ingest can stream, by the name ``TICKWIRE_FEED_SOURCE`` takes.

A feed is one module with its :class:`~producers.feed_source.FeedSource` class, built from the ingest's
settings and the Alpaca key pair, and one line here. The classes are named, not imported: reading the
settings (every ``tickwire`` command does) must not load alpaca-py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from producers.feed_source import FeedSource
    from producers.settings import IngestSettings

FEED_SOURCE_VARIABLE = "TICKWIRE_FEED_SOURCE"
DEFAULT_FEED_SOURCE = "stocks"
FEED_SOURCES: dict[str, str] = {  # name -> "module:class"
    "stocks": "producers.stock_source:StockFeedSource",
}


def open_feed_source(settings: IngestSettings, credentials: tuple[str, str]) -> FeedSource:
    """The source ``settings.feed_source`` names (the settings checked the name)."""
    module, _, name = FEED_SOURCES[settings.feed_source].partition(":")
    source: FeedSource = getattr(importlib.import_module(module), name)(settings, credentials)
    return source
