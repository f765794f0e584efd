"""Servers tickwire starts for you when none is configured: Apache Kafka (KRaft, on the JVM) and redis-server."""

from deploy.embedded.broker import EmbeddedBroker
from deploy.embedded.redis_server import EmbeddedRedis

__all__ = ["EmbeddedBroker", "EmbeddedRedis"]
