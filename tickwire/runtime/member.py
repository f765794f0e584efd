"""The consumer-group member: :class:`BatchConsumer` processes whatever each fetch returned, at once.

Natural batching: no time window. Each turn takes every record the consumer has fetched (at most
``max_records``) and hands them to the handler in one call; under load batches grow by themselves,
at low rates they are one or a few records and wait for nothing.

The commit rule, in one place: offsets are committed only for records the handler has finished
(``handle`` returned: Redis has them) *and* whose Kafka outputs are acknowledged (``before_commit``
returned). Commits happen every ``commit_interval_s``, when partitions are revoked (after the batch in
flight finishes) and when the consumer stops. On assignment the handler restores its state for the
new partitions before any of their records is processed.

When outputs are lost (``before_commit`` raised) nothing is committed: every owned partition is read again from
its last commit and the handler is told (``on_outputs_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from tickwire.kafka import READ_ISOLATION, aiokafka_security, bootstrap_list, range_assignor
from tickwire.runtime.transactions import TransactionAborted, TransactionalOutputs, TransactionCommits
from tickwire.settings import TickwireSettings

log = structlog.get_logger(__name__)

IDLE_POLL_MS = 100  # getmany returns at the first records; when none come, the loop checks its commit timer
COMMIT_TIMEOUT_S = 10.0  # aiokafka retries a retriable commit error forever; the next commit tries again
# A dead member's partitions move after the session timeout: 6 s keeps failover near 5-10 s.
SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_MS = 1_000


class BatchHandler(Protocol):
    """What a BatchConsumer drives."""

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        """Restore state for newly owned partitions (before any of their records is handled); ``committed``
        holds the offset each will be consumed from (absent: none committed, consumption starts at the
        beginning)."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget the state of partitions this member no longer owns (after their last commit)."""

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Process one batch, in order; return once its projections are written."""

    async def before_commit(self) -> None:
        """Make every output sent so far durable (acknowledged); raise if one was lost."""

    async def on_outputs_lost(self) -> None:
        """Some outputs since the last commit were lost and processing resumes from that commit: send again
        what reprocessing would not (state that already holds those records skips them)."""


class OffsetSink(Protocol):
    """Where a member's offsets are committed: the group (at least once) or its stage's transaction
    (exactly once, :class:`~tickwire.runtime.transactions.TransactionCommits`)."""

    transactional: bool

    def has_uncommitted_outputs(self) -> bool:
        """Outputs wait for a commit even when no offset moved."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit ``offsets``; False: not now (logged), the next commit tries again."""

    async def abort(self) -> None:
        """Void the outputs sent since the last commit (nothing to do where they cannot be voided)."""


class GroupCommits:
    """At least once: offsets committed to the group once the outputs are acknowledged."""

    transactional = False

    def __init__(self, consumer: AIOKafkaConsumer, name: str) -> None:
        self.consumer = consumer
        self.name = name

    def has_uncommitted_outputs(self) -> bool:
        """Flushed outputs are visible already."""
        return False

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit to the group; a timeout, a rebalance or a broker error leaves it to the next commit."""
        try:
            await asyncio.wait_for(self.consumer.commit(dict(offsets)), COMMIT_TIMEOUT_S)
        except TimeoutError:
            log.warning("offset commit timed out, will retry", consumer=self.name, timeout_s=COMMIT_TIMEOUT_S)
            return False
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance is under way: the revoke callback commits what this member finished.
            log.info("commit deferred to the rebalance", consumer=self.name, reason=type(exc).__name__)
            return False
        except KafkaError as exc:
            log.warning("offset commit failed, will retry", consumer=self.name, error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    async def abort(self) -> None:
        """Sent is sent: reprocessing sends it again (at least once)."""


class BatchConsumer(ConsumerRebalanceListener):
    """Runs ``handler`` over ``consumer``'s records until stopped; owns the consumer's commits."""

    def __init__(self, consumer: AIOKafkaConsumer, handler: BatchHandler, *, topics: Sequence[str],
                 max_records: int, commit_interval_s: float, name: str, offsets: OffsetSink | None = None) -> None:
        self.consumer = consumer
        self.handler = handler
        self.offsets = offsets or GroupCommits(consumer, name)
        self.topics = list(topics)
        self.max_records = max_records
        self.commit_interval_s = commit_interval_s
        self.name = name
        self.done: dict[TopicPartition, int] = {}  # next offset to commit, per owned partition
        self._committed: dict[TopicPartition, int] = {}
        self._turn = asyncio.Lock()  # held while a batch is handled or state restored: rebalances wait for it
        self._last_commit = time.monotonic()
        self.batches = 0
        self.records = 0

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset this member will process of ``tp`` (None: nothing fetched or committed yet)."""
        return self.done.get(tp, self._committed.get(tp))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish the batch in flight and commit."""
        self.consumer.subscribe(self.topics, listener=self)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(
                    self.consumer.getmany(timeout_ms=IDLE_POLL_MS, max_records=self.max_records))
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetch
                    break
                batches = fetch.result()
                if batches:
                    async with self._turn:
                        await self._handle(batches)
                if time.monotonic() - self._last_commit >= self.commit_interval_s:
                    async with self._turn:
                        await self.commit()
        finally:
            stopping.cancel()
            async with self._turn:
                await self.commit()

    async def _read_from_start(self, tp: TopicPartition) -> None:
        """Forget what this member did or committed of ``tp``, and consume it from its first offset."""
        self.done.pop(tp, None)
        self._committed.pop(tp, None)
        await self.consumer.seek_to_beginning(tp)

    async def _reprocess_uncommitted(self, exc: Exception) -> None:
        """Outputs of some finished records were lost: read every owned partition again from its last commit
        (projections are idempotent), so nothing is committed that was not delivered.

        Under exactly once the transaction is void, so the handler's state must not hold its records either:
        it forgets every owned partition and restores it as a new owner would."""
        log.warning("outputs not delivered; processing again from the last commit", consumer=self.name,
                    error=f"{type(exc).__name__}: {exc}")
        owned = self.consumer.assignment()
        if self.offsets.transactional:
            await self._read_committed_offsets(owned)
            await self.handler.on_revoked(set(owned))
            await self.handler.on_assigned(set(owned), {tp: o for tp, o in self._committed.items() if tp in owned})
        for tp in owned:
            committed = self._committed.get(tp)
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: its new owner reads from the commit
                if committed is None:
                    await self._read_from_start(tp)
                else:
                    self.done[tp] = committed
                    self.consumer.seek(tp, committed)
        if not self.offsets.transactional:
            await self.handler.on_outputs_lost()

    async def _read_committed_offsets(self, partitions: set[TopicPartition]) -> None:
        """Ask the group what is committed: a commit that failed on the way back (the broker killed after the
        transaction's end, say) may have landed, and reading again from before it would send its outputs twice."""
        for tp in partitions:
            with contextlib.suppress(KafkaError):
                committed = await self.consumer.committed(tp)
                if committed is None:
                    self._committed.pop(tp, None)
                else:
                    self._committed[tp] = committed

    async def _handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        owned = self.consumer.assignment()
        records: list[ConsumerRecord] = []
        for tp, part in batches.items():
            if tp in owned and part:  # a partition revoked since the fetch belongs to its new owner now
                records.extend(part)
        if not records:
            return
        await self.handler.handle(records)
        for tp, part in batches.items():
            if tp in owned and part:
                self.done[tp] = part[-1].offset + 1
        self.batches += 1
        self.records += len(records)

    async def commit(self, partitions: set[TopicPartition] | None = None) -> None:
        """Make outputs durable, then commit what is done (only ``partitions`` if given; a transaction holds the
        outputs of every partition, so it commits them all)."""
        self._last_commit = time.monotonic()
        if self.offsets.transactional:
            partitions = None
        offsets = {tp: offset for tp, offset in self.done.items()
                   if (partitions is None or tp in partitions) and self._committed.get(tp) != offset}
        if not offsets and not self.offsets.has_uncommitted_outputs():
            return
        try:
            await self.handler.before_commit()
        except KafkaError as exc:
            await self.offsets.abort()
            await self._reprocess_uncommitted(exc)
            return
        try:
            committed = await self.offsets.commit(offsets)
        except TransactionAborted as exc:
            await self._reprocess_uncommitted(exc)
            return
        if committed:
            self._committed.update(offsets)

    # --- ConsumerRebalanceListener ------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """The batch in flight finishes; what is done of the revoked partitions is committed; their state goes."""
        revoked = set(revoked)
        async with self._turn:
            if revoked:
                await self.commit(revoked)
            for tp in revoked:
                self.done.pop(tp, None)
                self._committed.pop(tp, None)
            await self.handler.on_revoked(revoked)
        if revoked:
            log.info("partitions revoked", consumer=self.name, partitions=_names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Restore the handler's state for the new partitions before processing resumes."""
        assigned = set(assigned)
        async with self._turn:
            new = {tp for tp in assigned if tp not in self.done}
            for tp in new:
                with contextlib.suppress(KafkaError):
                    committed = await self.consumer.committed(tp)
                    if committed is not None:
                        self._committed[tp] = committed
            await self.handler.on_assigned(assigned, {tp: o for tp, o in self._committed.items() if tp in assigned})
        log.info("partitions assigned", consumer=self.name, partitions=_names(assigned))


def _names(tps: set[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)]


def group_member(settings: TickwireSettings, handler: BatchHandler, *, topics: Sequence[str], group: str, name: str,
                 fetch_wait_s: float, max_records: int, commit_interval_s: float,
                 transaction: TransactionalOutputs | None = None) -> BatchConsumer:
    """A member of consumer group ``group`` over ``topics`` driving ``handler`` (nothing connects until started).

    Offsets are committed by the member only (the commit rule): to the group, or with ``transaction`` in the
    stage's transaction (exactly once). A new group starts at the earliest offsets, inputs are read committed
    (an aborted transaction's records are skipped), and the range assignor gives a member the same partition
    numbers of every topic, so inputs keyed alike are co-partitioned (a join's state is local)."""
    assert settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_list(settings.kafka_bootstrap_servers), group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=round(fetch_wait_s * 1000),
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        partition_assignment_strategy=(range_assignor(),), isolation_level=READ_ISOLATION,
        **aiokafka_security(settings),
    )
    offsets = TransactionCommits(transaction, group) if transaction is not None else None
    return BatchConsumer(consumer, handler, topics=topics, max_records=max_records,
                         commit_interval_s=commit_interval_s, name=name, offsets=offsets)
