"""``tickwire replay``: re-run the stages over a range of their input topics into an isolated run.

A topic names the stage(s) that replay it (the stage registry: ``quotes.raw`` the price stage; ``positions``,
the marks topic or ``bars.daily.raw`` the P&L stage), and the run reads every topic those stages replay, over
the same bounds. It reads with no consumer group (so no live group's offsets move), writes only to topics
suffixed ``.replay.{run}`` and Redis names prefixed ``replay:{run}:``, and records what it did in a manifest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from redis.asyncio import Redis

from consumers.tools.bounds import Bound, TimeField
from consumers.tools.replay_handlers import ReplayContext, ReplayHandler, handlers_for, replayable_topics
from consumers.tools.run_manifest import PartitionSpan, ReplayRun, check_run_id
from consumers.tools.settings import ToolSettings
from consumers.tools.topic_range import FETCH_DEADLINE_S, PartitionRange, RangeResolver, TopicRange, record_time_ns
from schemas.timestamps import format_ns, now_ns
from schemas.topics import REPLAY_RUN_KEY, TopicSpec, namespaced, replay_namespace
from tickwire.errors import TickwireError
from tickwire.kafka import READ_ISOLATION, aiokafka_security, bootstrap_list
from tickwire.topic_admin import ensure_topics


class ReplayError(TickwireError, RuntimeError):
    """The replay cannot start or cannot finish (the message says why)."""


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay and how (see ``tickwire replay --help``)."""

    topic: str  # with ``more_topics``: the topics naming the stages to replay
    start: Bound | None
    end: Bound | None
    run_id: str
    symbols: frozenset[str] = frozenset()
    speed: float = 0.0  # 0: as fast as possible; N: N times the recorded pace
    time_field: TimeField = "record"
    max_quote_age_s: float | None = None  # None: the live processor's setting
    batch_size: int = 100
    more_topics: tuple[str, ...] = ()

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics named, in order, once each."""
        return tuple(dict.fromkeys((self.topic, *self.more_topics)))


@dataclass(frozen=True)
class RunRange:
    """The resolved ranges of every topic a run reads."""

    ranges: tuple[TopicRange, ...]

    @property
    def size(self) -> int:
        """Offsets spanned in all topics."""
        return sum(r.size for r in self.ranges)

    @property
    def notes(self) -> tuple[str, ...]:
        """How the broker's answers were checked (each note names its topic when the run reads several)."""
        if len(self.ranges) == 1:
            return self.ranges[0].notes
        return tuple(f"{r.topic}: {note}" for r in self.ranges for note in r.notes)

    def partitions(self) -> list[tuple[str, PartitionRange]]:
        """(topic, partition range) of every partition read."""
        return [(r.topic, p) for r in self.ranges for p in r.partitions]


class ReplayProgress(Protocol):
    """Receives progress as offsets are consumed (the CLI shows a rich progress bar)."""

    def started(self, replay_range: RunRange) -> None:
        """The range is resolved; ``replay_range.size`` offsets are to be read."""

    def advanced(self, offsets: int, replayed: int) -> None:
        """``offsets`` more offsets read, ``replayed`` of them passed the symbol filter."""


class _Pacer:
    """Keeps the recorded spacing of events, ``speed`` times faster (no waiting when speed is 0)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin: tuple[int, float] | None = None

    def delay_s(self, event_ns: int | None) -> float:
        if self.speed <= 0 or event_ns is None:
            return 0.0
        if self._origin is None:
            self._origin = (event_ns, time.monotonic())
            return 0.0
        first_event, first_wall = self._origin
        return first_wall + (event_ns - first_event) / 1e9 / self.speed - time.monotonic()


async def replay(settings: ToolSettings, request: ReplayRequest, progress: ReplayProgress | None = None,
                 redis_url: str | None = None) -> ReplayRun:
    """Run the replay to the end of its range and return (and store) its manifest."""
    run_id = check_run_id(request.run_id)
    replayable = replayable_topics(settings.processor_app_id)
    unknown = [topic for topic in request.topics if topic not in replayable]
    if unknown:
        raise ReplayError(f"no stage replays {', '.join(map(repr, unknown))}; replayable topics: "
                          f"{', '.join(replayable)}")
    if not settings.kafka_bootstrap_servers:
        raise ReplayError("KAFKA_BOOTSTRAP_SERVERS is not set")
    url = redis_url or settings.redis_url
    if not url:
        raise ReplayError("REDIS_URL is not set (or give --redis-url)")
    namespace = replay_namespace(run_id)
    security = aiokafka_security(settings)
    bootstrap = bootstrap_list(settings.kafka_bootstrap_servers)
    started_at = now_ns()
    redis = Redis.from_url(url)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100, isolation_level=READ_ISOLATION, **security)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **security)
    try:
        await _refuse_existing_run(redis, namespace, run_id)
        await consumer.start()
        max_age = (request.max_quote_age_s if request.max_quote_age_s is not None
                   else settings.quote_age_limit_s)
        # The run's age limit is given in full (the delayed feed's delay included): the feed must not add it again.
        context = ReplayContext(run_id, namespace, redis, producer, settings.replay_ttl_s, settings,
                                {"max_quote_age_s": max_age, "alpaca_feed": "iex"})
        handlers = handlers_for(context, request.topics)
        topics = list(dict.fromkeys(topic for h in handlers for topic in h.topics))
        resolving = time.monotonic()
        resolver = RangeResolver(consumer, request.time_field)
        replay_range = RunRange(tuple([await resolver.resolve(topic, request.start, request.end) for topic in topics]))
        resolve_s = time.monotonic() - resolving
        await producer.start()
        outputs = {live: run for h in handlers for live, run in h.output_topics.items()}
        await _create_run_topics(settings, outputs, max(len(r.partitions) for r in replay_range.ranges))
        if progress is not None:
            progress.started(replay_range)
        replaying = time.monotonic()
        read, replayed = await _consume(consumer, replay_range, request, handlers, progress)
        for handler in handlers:
            await handler.finish()
        await producer.flush()
        replay_s = time.monotonic() - replaying
        several = len(topics) > 1
        run = ReplayRun(
            run_id=run_id, namespace=namespace, source_topic=topics[0],
            partitions=[PartitionSpan(partition=p.partition, start=p.start, end=p.end, start_how=p.start_how,
                                      end_how=p.end_how, topic=topic if several else "")
                        for topic, p in replay_range.partitions()],
            notes=list(replay_range.notes), time_field=request.time_field, symbols_filter=sorted(request.symbols),
            speed=request.speed, max_quote_age_s=max_age, output_topics=outputs,
            started_at=format_ns(started_at), finished_at=format_ns(now_ns()), records_read=read,
            records_replayed=replayed, accepted=sum(h.counts.accepted for h in handlers),
            rejected=sum(h.counts.rejected for h in handlers),
            symbols=sorted(set().union(*(h.counts.symbols for h in handlers))),
            resolve_seconds=round(resolve_s, 3), replay_seconds=round(replay_s, 3),
            source_topics=topics if several else [], stages=[h.name for h in handlers],
            accounts=sorted(set().union(*(h.counts.accounts for h in handlers))),
        )
        await _finish(redis, namespace, run, settings.replay_ttl_s)
        return run
    finally:
        await consumer.stop()
        await producer.stop()
        await redis.aclose()


async def _refuse_existing_run(redis: Redis, namespace: str, run_id: str) -> None:
    async for _key in redis.scan_iter(match=namespace + "*", count=1000):
        raise ReplayError(f"run {run_id!r} already has state in Redis ({namespace}*): choose another --run-id")


async def _create_run_topics(settings: ToolSettings, outputs: dict[str, str], partitions: int) -> None:
    specs = [TopicSpec(run, "symbol", bytes, f"replay output of {live}") for live, run in outputs.items()]
    created = await ensure_topics(settings.kafka_bootstrap_servers or "", partitions, specs,
                                  settings.topic_replication, **aiokafka_security(settings))
    existing = sorted(set(outputs.values()) - set(created))
    if existing:
        raise ReplayError(f"topic(s) {', '.join(existing)} already exist: choose another --run-id")


async def _consume(
    consumer: AIOKafkaConsumer,
    replay_range: RunRange,
    request: ReplayRequest,
    handlers: Sequence[ReplayHandler],
    progress: ReplayProgress | None,
) -> tuple[int, int]:
    active = {TopicPartition(topic, p.partition): p for topic, p in replay_range.partitions() if p.size}
    position = {tp: span.start for tp, span in active.items()}
    consumer.assign(list(active))
    for tp, first in active.items():
        consumer.seek(tp, first.start)
    pacer = _Pacer(request.speed)
    read = replayed = 0
    deadline = time.monotonic() + FETCH_DEADLINE_S
    while active:
        batch = await consumer.getmany(*active, timeout_ms=500, max_records=request.batch_size)
        if not any(batch.values()):
            if time.monotonic() > deadline:
                stuck = ", ".join(f"{tp.topic}[{tp.partition}]@{position[tp]}" for tp in active)
                raise ReplayError(f"the source topics stopped answering before the end of the range (at {stuck})")
            continue
        deadline = time.monotonic() + FETCH_DEADLINE_S
        selected: list[ConsumerRecord] = []
        offsets_before, replayed_before = read, replayed
        for tp, records in batch.items():
            span = active.get(tp)
            if span is None:
                continue
            before = position[tp]
            for record in records:
                if record.offset >= span.end:
                    break
                position[tp] = record.offset + 1
                if request.symbols and _symbol(record.key) not in request.symbols:
                    continue
                delay = pacer.delay_s(record_time_ns(record, request.time_field))
                if delay > 0.002:
                    await _handle(handlers, selected)  # what is due goes out before the pause
                    selected = []
                    await asyncio.sleep(delay)  # time compression: keep the recorded pacing
                selected.append(record)
                replayed += 1
            if position[tp] >= span.end or await consumer.position(tp) >= span.end:  # offsets may skip
                position[tp] = span.end
                del active[tp]
                consumer.pause(tp)
            read += position[tp] - before
        await _handle(handlers, selected)
        if progress is not None:
            progress.advanced(read - offsets_before, replayed - replayed_before)
    return read, replayed


async def _handle(handlers: Sequence[ReplayHandler], records: list[ConsumerRecord]) -> None:
    if not records:
        return
    for handler in handlers:
        mine = records if len(handlers) == 1 else [r for r in records if r.topic in handler.topics]
        if mine:
            await handler.handle(mine)


def _symbol(key: bytes | None) -> str:
    return key.decode(errors="replace").rpartition(":")[2] if key else ""


async def _finish(redis: Redis, namespace: str, run: ReplayRun, ttl_seconds: int) -> None:
    """Store the manifest and give every key of the run the replay TTL (counters are created without one)."""
    pipe = redis.pipeline(transaction=False)
    async for key in redis.scan_iter(match=namespace + "*", count=1000):
        pipe.expire(key, ttl_seconds)
    pipe.set(namespaced(REPLAY_RUN_KEY, namespace), run.model_dump_json(), ex=ttl_seconds)
    await pipe.execute()
