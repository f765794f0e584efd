"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.test_ingest_harness import MakeFeed, feed_factory


@pytest.fixture
async def make_feed() -> AsyncIterator[MakeFeed]:
    """Local Alpaca feeds for this test, stopped at teardown."""
    async with feed_factory() as start:
        yield start
