"""Kafka connection helpers shared by the ingest, the processor and the tools; the aiokafka adapter.

Every use of aiokafka beyond its top-level API is here, each saying why: :func:`topic_partitions` (a private
metadata call), :func:`transaction_failure` (a private future), :func:`range_assignor` and :data:`BatchBuilder`
(public classes under module paths aiokafka does not export at the top). Nothing else in tickwire imports an
aiokafka submodule other than ``errors``, ``abc``, ``structs``, ``helpers`` and ``partitioner``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    # What AIOKafkaProducer.create_batch returns (the batched outputs append to it): typing only.
    from aiokafka.producer.message_accumulator import BatchBuilder as BatchBuilder

    from tickwire.settings import TickwireSettings


# Every tickwire reader: records of an aborted transaction are never seen, nor those of one still open (exactly
# once); where nothing is transactional this reads exactly what read_uncommitted would.
READ_ISOLATION = "read_committed"


def bootstrap_list(servers: str) -> list[str]:
    """'h1:9092,h2:9092' (or ';'-separated) -> ['h1:9092', 'h2:9092']."""
    items = [s.strip() for s in servers.replace(";", ",").split(",")]
    hosts = [s.removeprefix("kafka://") for s in items if s]
    if not hosts:
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS is empty")
    return hosts


def aiokafka_security(settings: TickwireSettings) -> dict[str, Any]:
    """TLS/SASL keyword arguments for any aiokafka client (none for PLAINTEXT), from the KAFKA_* settings."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    from aiokafka.helpers import create_ssl_context

    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()  # type: ignore[union-attr]
    return options


METADATA_RETRY_S = 10.0


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, *, within_s: float = METADATA_RETRY_S) -> list[int]:
    """The partition ids of ``topic`` (empty when there is no such topic), from a metadata round trip.

    aiokafka's consumer has no public call for a topic it is not assigned yet: ``topics()`` drops the
    partitions and ``partitions_for_topic`` knows only tracked topics. So this reads the client's own metadata
    call, the one private use of aiokafka in tickwire's readers.

    A broker that is up but fenced (it missed heartbeats, e.g. paused, and is catching up) answers metadata
    with no brokers, which aiokafka raises as a bare ``KafkaError``; it is unfenced within a heartbeat or two,
    so the call is tried again for ``within_s`` seconds before that error goes to the caller."""
    from aiokafka.errors import KafkaError
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

    async for attempt in AsyncRetrying(retry=retry_if_exception_type(KafkaError), stop=stop_after_delay(within_s),
                                       wait=wait_exponential(multiplier=0.05, max=1.0), reraise=True):
        with attempt:
            cluster = await consumer._client.fetch_all_metadata()
    return sorted(cluster.partitions_for_topic(topic) or ())


def transaction_failure(producer: AIOKafkaProducer) -> BaseException | None:
    """Why ``producer``'s transaction ended in error (ProducerFenced, say), or None.

    Once fenced, aiokafka's transactional calls fail with an assertion or ``IllegalOperation`` while the cause
    sits in its private end-of-transaction future; reading it names the cause and marks it retrieved (else
    asyncio logs "Future exception was never retrieved" at exit)."""
    waiter = producer._txn_manager.wait_for_transaction_end() if producer._txn_manager is not None else None
    if waiter is None or not waiter.done() or waiter.cancelled():
        return None
    return waiter.exception()


def range_assignor() -> type:
    """aiokafka's range partition assignor: a member gets the same partition numbers of every topic it reads.

    Co-partitioned inputs need it (the P&L join); aiokafka documents the strategy option but exports the class
    only from ``aiokafka.coordinator.assignors.range``."""
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor

    return RangePartitionAssignor
