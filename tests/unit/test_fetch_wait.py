"""cap_fetch_wait: Faust's worker consumer gets the configured fetch wait instead of its fixed 1,500 ms."""

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from processors.fetch_wait import cap_fetch_wait


def test_cap_fetch_wait_given_faust_consumer_sets_the_wait_and_patches_once(monkeypatch: Any) -> None:
    """Test that consumers created after the cap carry it, and capping twice does not wrap twice."""
    # Arrange
    class FakeConsumer:
        _fetch_max_wait_ms = 1500

    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: FakeConsumer())
    # Act
    cap_fetch_wait(10)
    patched = AIOKafkaConsumerThread._create_worker_consumer
    cap_fetch_wait(10)
    # Assert
    assert AIOKafkaConsumerThread._create_worker_consumer is patched
    assert patched(object(), None)._fetch_max_wait_ms == 10  # type: ignore[arg-type]
