"""TopicKeeper against a real broker that restarts empty (the embedded one keeps everything in memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.embedded import EmbeddedBroker
from schemas.topics import ALL_TOPICS
from tickwire.topic_keeper import TopicKeeper

pytestmark = pytest.mark.integration


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_topic_keeper_given_broker_restarted_empty_recreates_every_topic_and_reports_the_loss_once(
        log_dir: Path) -> None:
    lost: list[int] = []
    first = EmbeddedBroker(log_dir / "keeper-first")
    await first.start()
    second: EmbeddedBroker | None = None
    try:
        keeper = TopicKeeper(first.bootstrap, 2, ALL_TOPICS, "test", on_lost=lost.append)
        created_at_start = await keeper.ensure()
        assert not await keeper.check()  # all there: nothing to do

        await first.process.stop(timeout=0)
        second = EmbeddedBroker(log_dir / "keeper-second", port=first.port)
        await second.start()
        assert await keeper.check()
        assert not await keeper.check()  # reported once
        names = await topic_names(second.bootstrap)
    finally:
        if second is not None:
            await second.stop()
        await first.stop()

    assert set(created_at_start) == {s.name for s in ALL_TOPICS} | {keeper.marker.name}
    assert names >= set(created_at_start)
    assert len(lost) == 1 and lost[0] > 0 and keeper.losses == 1
