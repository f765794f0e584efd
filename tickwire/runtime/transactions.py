"""Exactly once: a stage's Kafka outputs and its consumed offsets committed in one transaction.

Under ``TICKWIRE_PROCESSING_GUARANTEE=exactly_once`` each stage member sends through its own
:class:`TransactionalOutputs` and commits through :class:`TransactionCommits`. A transaction is open from
one commit to the next; a commit, with the member's batch loop paused (:mod:`tickwire.runtime.member`):

1. the stage flushes as under at-least-once (``before_commit``: changelogs sent, every output acknowledged);
2. shipping pauses (records queued meanwhile by timers wait for the next transaction) and the batches already
   handed to aiokafka are acknowledged;
3. the offsets join the transaction, it commits, the next one begins and shipping resumes.

A transaction that cannot commit is aborted: nothing it sent is ever seen by a ``read_committed`` reader, and
the member restarts from its last commit with its state restored as a new owner's would be
(:class:`TransactionAborted`).

Fencing: the transactional id is ``{group}.{instance}``. A restarted instance fences its earlier incarnation
(the broker aborts what that one left open and refuses it anything more). A producer that finds itself fenced
(its transaction outlived the timeout while the broker or the process was paused, or another process took the
id) is replaced and the member starts again from its last commit; fenced over and over, it stops
(:class:`StageFenced`). aiokafka
0.14 adds offsets with TxnOffsetCommit v0, without the group generation of KIP-447, so a member that was
paused while its partitions moved to another *instance* is not fenced by the broker: give each instance of a
stage its own ``TICKWIRE_PROCESSOR_INSTANCE`` and do not run two with the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from tickwire.errors import TickwireError
from tickwire.kafka import transaction_failure
from tickwire.runtime.outputs import OutputProducer
from tickwire.settings import TickwireSettings

log = structlog.get_logger(__name__)

TRANSACTION_TIMEOUT_MS = 10_000
FENCES_ALLOWED, FENCE_WINDOW_S = 3, 60.0  # a pause or two a minute is survivable; more is a duplicate instance
OLD_PRODUCER_STOP_S = 10.0
START_RETRY_S = 60.0
FENCED = (ProducerFenced, AssertionError, IllegalOperation)  # see transaction_failure


class StageFenced(TickwireError):
    """This stage's transactional id is fenced again and again: another process holds it; this one stops."""


class TransactionAborted(TickwireError):
    """The transaction could not commit and was aborted: its outputs are void, its offsets not committed."""


class TransactionalOutputs(OutputProducer):
    """The batched producer with a transaction always open; :meth:`commit` ends it and begins the next."""

    def __init__(self, settings: TickwireSettings, transactional_id: str, linger_ms: float = 0.0) -> None:
        super().__init__(settings, linger_ms)
        self.transactional_id = transactional_id
        self._shipping = asyncio.Event()  # clear while a transaction ends: batches wait for the next one
        self._shipping.set()
        self._in_send = 0
        self._no_send = asyncio.Event()
        self._no_send.set()
        self.sent_since_commit = False
        self._starting = asyncio.Lock()
        self._fenced_at: list[float] = []

    def _producer_options(self) -> dict[str, object]:
        # A transaction left open by a process that died and is not restarted blocks read_committed readers of its
        # partitions until this timeout (Kafka Streams' exactly-once default; a commit comes every 100 ms).
        return {"transactional_id": self.transactional_id, "enable_idempotence": True,
                "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS}

    async def start(self) -> None:
        """Connect, fence any earlier producer with this id (the broker aborts its open transaction), begin."""
        await self._start()

    async def _start(self) -> AIOKafkaProducer:
        async with self._starting:  # the first transaction begins before any batch can ship
            # A broker just back (fenced until it catches up) answers metadata without brokers for a moment, and
            # aiokafka's start then fails an assertion: try again for a while.
            async for attempt in AsyncRetrying(retry=retry_if_exception_type((KafkaError, AssertionError)),
                                               stop=stop_after_delay(START_RETRY_S), reraise=True,
                                               wait=wait_exponential(multiplier=0.1, max=2.0)):
                with attempt:
                    if self._producer is None:
                        producer = await super()._start()
                        try:
                            await producer.begin_transaction()
                        except FENCED as exc:
                            raise self._fenced(exc, "at start") from exc
        assert self._producer is not None
        return self._producer

    async def _entering_send(self) -> None:
        while not self._shipping.is_set():
            await self._shipping.wait()
        self._in_send += 1
        self._no_send.clear()
        self.sent_since_commit = True

    def _left_send(self) -> None:
        self._in_send -= 1
        if not self._in_send:
            self._no_send.set()

    async def commit(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        """Commit everything sent since the last commit together with ``offsets`` of ``group_id``.

        Raises :class:`TransactionAborted` (nothing of it is visible; start again from the last commit) or
        :class:`StageFenced` (stop: fenced again and again)."""
        producer = self._producer or await self._start()
        self._shipping.clear()
        try:
            await self._no_send.wait()
            try:
                await self._delivered()
                if offsets:
                    await producer.send_offsets_to_transaction(dict(offsets), group_id)
                await producer.commit_transaction()
            except FENCED as exc:
                cause = await self._renew(exc)
                raise TransactionAborted(f"transaction {self.transactional_id} fenced ({cause}); a new producer "
                                         "took its place") from exc
            except KafkaError as exc:
                await self._abort(producer)
                raise TransactionAborted(f"transaction {self.transactional_id} aborted: {type(exc).__name__}: "
                                         f"{exc}") from exc
            self.sent_since_commit = False
            await self._begin(producer)
        finally:
            self._shipping.set()

    async def abort(self) -> None:
        """Void everything sent since the last commit (and drop what is queued); the next transaction begins."""
        producer = self._producer or await self._start()
        self._shipping.clear()
        try:
            await self._no_send.wait()
            await self._abort(producer)
        finally:
            self._shipping.set()

    async def stop(self) -> None:
        """Void what was sent after the last commit (it would hold read_committed readers back until the
        transaction timed out), then disconnect."""
        if self._producer is not None:
            if self.sent_since_commit or any(lane.builders for lane in self._lanes.values()):
                with contextlib.suppress(StageFenced):
                    await self.abort()
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    async def _abort(self, producer: AIOKafkaProducer) -> None:
        self.discard_queued()
        if self._pending:  # the aborted batches settle either way; their failures are moot
            await asyncio.wait(list(self._pending))
        self._failures.clear()
        try:
            await producer.abort_transaction()
        except FENCED as exc:
            await self._renew(exc)  # the broker aborted it when it fenced this producer
            return
        self.sent_since_commit = False
        await self._begin(producer)

    async def _begin(self, producer: AIOKafkaProducer) -> None:
        try:
            await producer.begin_transaction()
        except FENCED as exc:
            await self._renew(exc)

    async def _renew(self, exc: BaseException) -> str:
        """This producer was fenced: a transaction outlived ``transaction_timeout_ms`` (the broker paused, say) or
        another process took the id. Replace it by a new producer with the same id (its start aborts whatever
        the old one left open) and name the cause; fenced more than ``FENCES_ALLOWED`` times a minute, give up
        (:class:`StageFenced`): two processes are taking the id from each other."""
        cause = type((transaction_failure(self._producer) if self._producer is not None else None) or exc).__name__
        now = time.monotonic()
        self._fenced_at = [t for t in self._fenced_at if now - t < FENCE_WINDOW_S] + [now]
        if len(self._fenced_at) > FENCES_ALLOWED:
            raise self._fenced(exc, f"{len(self._fenced_at)} times in {FENCE_WINDOW_S:.0f}s")
        log.warning("transactional producer fenced; a new one takes its place", transactional_id=self.transactional_id,
                    cause=cause, fix="if this repeats, another process runs this stage with the same "
                                     "TICKWIRE_PROCESSOR_INSTANCE")
        old, self._producer = self._producer, None
        shippers = [lane.shipper for lane in self._lanes.values() if lane.shipper is not None]
        self.discard_queued()
        for shipper in shippers:  # each holds the old producer
            shipper.cancel()
        await asyncio.gather(*shippers, return_exceptions=True)
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), OLD_PRODUCER_STOP_S)
        self._pending.clear()
        self._failures.clear()
        self.sent_since_commit = False
        await self._start()
        return cause

    def _fenced(self, exc: BaseException, when: str) -> StageFenced:
        cause = (transaction_failure(self._producer) if self._producer is not None else None) or exc
        return StageFenced(f"transactional id {self.transactional_id!r} fenced {when} ({type(cause).__name__}): "
                           "another process runs this stage with the same TICKWIRE_PROCESSOR_INSTANCE; give each "
                           "its own")


class TransactionCommits:
    """A member's offsets committed in its stage's transaction (the offset sink of exactly once)."""

    transactional = True

    def __init__(self, outputs: TransactionalOutputs, group_id: str) -> None:
        self.outputs = outputs
        self.group_id = group_id

    def has_uncommitted_outputs(self) -> bool:
        """Records were sent since the last commit (by a timer, say): the transaction must end to show them."""
        return self.outputs.sent_since_commit

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit the transaction with ``offsets`` (raises TransactionAborted or StageFenced)."""
        await self.outputs.commit(offsets, self.group_id)
        return True

    async def abort(self) -> None:
        """Void the open transaction (its outputs were not all delivered)."""
        await self.outputs.abort()
