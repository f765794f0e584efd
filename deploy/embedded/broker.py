"""EmbeddedBroker: Apache Kafka in KRaft mode, one node (broker and controller), its log on disk.

The jars come from Maven Central (:mod:`deploy.embedded.broker_libs`); the data directory is formatted once
(``kafka.tools.StorageTool format``) and reused by every later start, so topics, committed offsets and
positions survive a restart. Each start writes ``server.properties`` afresh with the ports of this run: the
controller quorum is a static voter list, which, unlike ``--standalone``, bakes no address into the data.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path
from typing import Self

from aiokafka.admin import AIOKafkaAdminClient

from deploy.embedded.broker_libs import BROKER_FILES, BrokerSetupError, ensure_broker_libs, java_binary, libs_dir
from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.embedded.server import EmbeddedServer

# A fixed heap, touched at start (as Kafka's own start script fixes it): a heap that grew from 128 MiB took the
# broker's RSS from 326 to 448 MiB between the 10th and 30th minute at 1,000 quotes/s (190 MiB in use).
HEAP_MB = 384
# kafka-run-class.sh's JVM options, with a capped heap.
JVM_OPTIONS = ("-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
               "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true")
FORMAT_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0  # a clean shutdown flushes and writes its checkpoints; past this it is killed


def server_properties(host: str, port: int, controller_port: int, log_dirs: Path) -> str:
    """One combined broker+controller node on loopback, with single-node replication for internal topics."""
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{controller_port}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={log_dirs}",
        "num.partitions=1",
        # One node: internal topics with one replica and one partition (50 by default), or joins and
        # transactions wait for replicas that never come.
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # A first group join would wait 3 s for more members.
        "group.initial.rebalance.delay.ms=0",
        # tickwire creates its topics with their partitions and retention (tickwire/topic_admin.py).
        "auto.create.topics.enable=false",
        # The cleaner's dedupe buffer is on the heap: 128 MiB by default.
        "log.cleaner.dedupe.buffer.size=16777216",
        # Each topic states its own retention; the broker's default would delete by record time after 7 days.
        "log.retention.ms=-1",
        # Retention is checked every 10 s (5 min by default): a bounded disk stays near its bound.
        "log.retention.check.interval.ms=10000",
        # After a crash the new incarnation waits for the old one's session to lapse (9 s by default).
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
        "",
    ])


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in unpadded base64url (as ``StorageTool random-uuid`` makes)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):  # the storage tool would read it as an option
            return cluster_id


GROUP_COORDINATOR, TRANSACTION_COORDINATOR = 0, 1


async def probe_kafka(bootstrap: str) -> None:
    """Succeeds when the broker answers a metadata request and has its group and transaction coordinators.

    On a new data directory the first coordinator lookup creates ``__consumer_offsets`` (and
    ``__transaction_state``); until they are up, clients log GroupCoordinatorNotAvailable errors."""
    host, _, port = bootstrap.rpartition(":")
    # A plain connect first: aiokafka logs an ERROR for every refused connection.
    _, writer = await asyncio.open_connection(host, int(port))
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        await admin.find_coordinator("tickwire-ready", GROUP_COORDINATOR)
        await admin.find_coordinator("tickwire-ready", TRANSACTION_COORDINATOR)
    finally:
        await admin.close()


class EmbeddedBroker(EmbeddedServer):
    """Kafka on free loopback ports with its data in ``data_dir``; ``bootstrap`` is its address.

    Use as an async context, or ``start``/``stop``; a stopped (or killed) broker starts again on the same
    ports and data. ``log_dir`` receives ``broker.log`` (default: ``data_dir``); ``cache`` holds the jars
    (default: :func:`~deploy.embedded.broker_libs.default_cache_dir`)."""

    startup_timeout_s = 90.0  # a cold JVM on a busy 2-core machine

    def __init__(self, data_dir: Path, log_dir: Path | None = None, host: str = "127.0.0.1",
                 port: int | None = None, controller_port: int | None = None, heap_mb: int = HEAP_MB,
                 cache: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.controller_port = controller_port or free_port(host)
        self.data_dir = data_dir
        self.log_dirs = data_dir / "kraft"
        self.config = data_dir / "server.properties"
        self.libs = libs_dir(cache)
        log_config = BROKER_FILES / "log4j2.properties"
        self.process = ManagedProcess(
            "broker",
            ["java", f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", "-XX:+AlwaysPreTouch", *JVM_OPTIONS,
             f"-Dlog4j2.configurationFile={log_config}", f"-Dkafka.logs.dir={data_dir / 'logs'}",
             "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.config)],
            (log_dir or data_dir) / "broker.log",
        )

    @property
    def bootstrap(self) -> str:
        """host:port for KAFKA_BOOTSTRAP_SERVERS."""
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    @property
    def formatted(self) -> bool:
        """Whether the data directory holds a broker's data already (then it is reused, not formatted)."""
        return (self.log_dirs / "meta.properties").exists()

    async def probe(self) -> None:
        await probe_kafka(self.bootstrap)

    async def start(self, timeout: float | None = None) -> Self:
        """Fetch the jars if needed, format the data directory if new, then start and wait until it answers."""
        java = await asyncio.to_thread(java_binary)
        await ensure_broker_libs(self.libs.parent)
        self.process.argv[0] = java
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(server_properties(self.host, self.port, self.controller_port, self.log_dirs))
        if not self.formatted:
            await self._format(java)
        return await super().start(timeout)

    async def stop(self) -> None:
        """A clean shutdown (SIGTERM), killed after STOP_TIMEOUT_S; the data stays."""
        await self.process.stop(timeout=STOP_TIMEOUT_S)

    async def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed or checkpointed (a later start recovers the log)."""
        await self.process.kill()

    async def _format(self, java: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            java, "-Xmx256m", f"-Dlog4j2.configurationFile={BROKER_FILES / 'log4j2.properties'}",
            "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(self.config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), FORMAT_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            raise BrokerSetupError(f"formatting the Kafka data directory {self.log_dirs} took over "
                                   f"{FORMAT_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            text = output.decode(errors="replace").strip().splitlines()
            raise BrokerSetupError(f"cannot format the Kafka data directory {self.log_dirs}: "
                                   f"{text[-1] if text else proc.returncode} (delete it to start empty)")
