"""topic_partitions: a metadata answer without brokers (a fenced broker catching up) is tried again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaError

from tickwire.kafka import topic_partitions


class _Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {1, 0} if topic == "prices" else set()


class _Client:
    """aiokafka's client as a fenced broker leaves it: the first ``failures`` metadata calls find no brokers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def fetch_all_metadata(self) -> _Cluster:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaError("Unable to get cluster metadata over all known brokers")
        return _Cluster()


def _consumer(client: _Client) -> Any:
    return SimpleNamespace(_client=client)


async def test_given_metadata_without_brokers_twice_then_partitions_are_read_on_the_third_call() -> None:
    client = _Client(failures=2)

    assert await topic_partitions(_consumer(client), "prices") == [0, 1]
    assert client.calls == 3


async def test_given_metadata_never_has_brokers_then_the_error_reaches_the_caller_after_the_window() -> None:
    client = _Client(failures=10**6)

    with pytest.raises(KafkaError, match="cluster metadata"):
        await topic_partitions(_consumer(client), "prices", within_s=0.3)
    assert client.calls > 1


async def test_given_no_such_topic_then_no_partitions() -> None:
    assert await topic_partitions(_consumer(_Client(failures=0)), "nope") == []
