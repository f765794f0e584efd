"""ApiContext: the long-lived clients one app instance shares between requests (made in its lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from consumers.api.alpaca_closes import AlpacaPreviousCloses
from consumers.api.broker import BrokerGateway
from consumers.api.metrics import ApiMetrics
from consumers.api.price_history import PriceHistoryReader
from consumers.api.realtime_pnl import RealtimePnL
from consumers.api.settings import ApiSettings
from tickwire.kafka import aiokafka_security, bootstrap_list

# Short timeouts: with Redis down a request answers 503 quickly instead of hanging.
REDIS_TIMEOUTS = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}


@dataclass
class ApiContext:
    """Settings and clients of a running app."""

    settings: ApiSettings
    redis: Redis  # request/response reads and writes
    stream_redis: Redis  # blocking stream reads of push streams (no read timeout)
    broker: BrokerGateway
    metrics: ApiMetrics
    realtime_pnl: RealtimePnL
    price_history: PriceHistoryReader
    alpaca_closes: AlpacaPreviousCloses

    @classmethod
    def create(cls, settings: ApiSettings, metrics: ApiMetrics) -> ApiContext:
        """Clients for ``settings`` (connections are opened on first use)."""
        if not settings.redis_url:
            raise ValueError("REDIS_URL is not set: the API reads everything it serves from Redis")
        redis = Redis.from_url(settings.redis_url, **REDIS_TIMEOUTS)  # type: ignore[arg-type]
        stream_redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2.0)
        security = aiokafka_security(settings)
        broker = BrokerGateway(settings.kafka_bootstrap_servers, settings.processor_app_id, security)
        bootstrap = bootstrap_list(settings.kafka_bootstrap_servers) if settings.kafka_bootstrap_servers else None
        return cls(settings, redis, stream_redis, broker, metrics, RealtimePnL(redis, settings.mark_policy),
                   PriceHistoryReader(bootstrap, security), AlpacaPreviousCloses(settings))

    async def close(self) -> None:
        """Disconnect everything."""
        await self.broker.close()
        await self.redis.aclose()
        await self.stream_redis.aclose()
