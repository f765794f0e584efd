"""FetchGuard: widens the fetch wait while the broker returns nothing though records wait; narrows it later."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from tickwire import fetch_guard
from tickwire.fetch_guard import FetchGuard

TP = TopicPartition("quotes.raw", 0)


class Consumer:
    """The three things FetchGuard reads of an AIOKafkaConsumer (a stand-in: the real one needs a stalled Tansu,
    which tests/integration/test_broker_limit.py provides)."""

    def __init__(self, highwater: int) -> None:
        self._highwater = highwater
        self._fetcher = SimpleNamespace(_fetch_max_wait_ms=10)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return self._highwater


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The guard's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(fetch_guard.time, "monotonic", lambda: now[0])
    return now


def guard(consumer: Consumer, position: int) -> FetchGuard:
    return FetchGuard(consumer, lambda tp: position, base_wait_s=0.01, max_wait_s=0.08, name="test")  # type: ignore[arg-type]


def test_guard_given_empty_fetches_while_records_wait_doubles_the_wait_up_to_the_max(clock: list[float]) -> None:
    consumer = Consumer(highwater=500)
    widened = guard(consumer, position=100)

    for _ in range(40):
        widened({})
        clock[0] += 0.1  # one empty poll

    assert consumer._fetcher._fetch_max_wait_ms == 80 and widened.wait_s == 0.08
    assert widened.detail is not None and "400 are waiting" in widened.detail


def test_guard_given_empty_fetches_with_nothing_waiting_keeps_the_wait() -> None:
    consumer = Consumer(highwater=100)
    idle = guard(consumer, position=100)

    for _ in range(40):
        idle({})

    assert consumer._fetcher._fetch_max_wait_ms == 10 and idle.detail is None


def test_guard_given_records_flowing_for_a_healthy_minute_narrows_back_to_the_base(clock: list[float]) -> None:
    consumer = Consumer(highwater=500)
    recovering = guard(consumer, position=100)
    for _ in range(5):
        recovering({})
        clock[0] += 0.1
    assert recovering.wait_s == 0.04  # widened twice: 0.2 s of nothing each time

    for _ in range(2):
        clock[0] += fetch_guard.HEALTHY_SECONDS_BEFORE_NARROWING
        recovering({TP: [object()]})  # type: ignore[dict-item]

    assert recovering.wait_s == 0.01 and recovering.detail is None and consumer._fetcher._fetch_max_wait_ms == 10


def test_guard_given_narrowing_that_stalls_again_keeps_that_wait_as_its_floor(clock: list[float]) -> None:
    consumer = Consumer(highwater=500)
    stalling = guard(consumer, position=100)
    for _ in range(3):  # widened once: 0.01 -> 0.02
        stalling({})
        clock[0] += 0.11  # one empty poll (not exactly 0.1: float sums)
    assert stalling.wait_s == 0.02
    clock[0] += fetch_guard.HEALTHY_SECONDS_BEFORE_NARROWING
    stalling({TP: [object()]})  # type: ignore[dict-item]
    assert stalling.wait_s == 0.01  # narrowing tried
    for _ in range(3):  # and it stalls again at 10 ms
        stalling({})
        clock[0] += 0.11  # one empty poll (not exactly 0.1: float sums)
    assert stalling.wait_s == 0.02

    clock[0] += fetch_guard.HEALTHY_SECONDS_BEFORE_NARROWING
    stalling({TP: [object()]})  # type: ignore[dict-item]

    assert stalling.wait_s == 0.02  # 20 ms is the floor now: no stall every minute
