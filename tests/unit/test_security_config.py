"""Security settings reach every client, and secrets never reach logs, errors or status output."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection

from deploy.settings import RunSettings
from tickwire.settings import redact_url

ROOT = Path(__file__).resolve().parents[2]
# Functions and classes that build aiokafka clients from the ``**client_options`` they are given.
KAFKA_WRAPPERS = ("ensure_topics", "RawEventPublisher", "SubscriptionRequestReader", "read_topic", "build_expected")


def _calls(names: tuple[str, ...]) -> list[tuple[Path, ast.Call, str]]:
    found = []
    for folder in ("producers", "processors", "consumers", "deploy", "tickwire"):
        for path in (ROOT / folder).rglob("*.py"):
            if "embedded" in path.parts:
                continue  # the embedded broker and its probe: a local plaintext broker
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", None))
                    if name in names:
                        found.append((path, node, name))
    return found


def test_every_kafka_client_wrapper_call_given_settings_passes_the_tls_and_sasl_options() -> None:
    """`tickwire run` created its topics without them (a managed Kafka refused it): every call must pass them."""
    missing = [f"{p.relative_to(ROOT)}:{n.lineno} {name}" for p, n, name in _calls(KAFKA_WRAPPERS)
               if not any(k.arg is None for k in n.keywords)]
    assert missing == [], f"Kafka clients built without TLS/SASL options: {missing}"


@pytest.mark.parametrize("url", ["rediss://:s3cret@cache.example:6380/0", "rediss://svc:s3cret@cache.example/1"])
async def test_redis_url_given_rediss_and_password_uses_tls_and_authenticates(url: str) -> None:
    """Every component builds its client with Redis.from_url: rediss:// means TLS, the password is sent."""
    client = Redis.from_url(url)
    try:
        pool = client.connection_pool
        assert pool.connection_class is SSLConnection
        assert pool.connection_kwargs["password"] == "s3cret"
    finally:
        await client.aclose()


def test_every_redis_client_given_the_url_is_built_from_it() -> None:
    """No component builds a Redis client from host/port pieces, which would drop the password and TLS."""
    direct = [f"{p.relative_to(ROOT)}:{n.lineno}" for p, n, name in _calls(("Redis", "StrictRedis"))
              if not isinstance(n.func, ast.Attribute)]
    assert direct == []


@pytest.mark.parametrize("url", ["redis://:s3cret@h:6379/0", "rediss://user:s3cret@h:6380/2"])
def test_redacted_settings_given_every_secret_hides_each_one(url: str) -> None:
    settings = RunSettings(REDIS_URL=url, ALPACA_API_KEY="AKs3cret", ALPACA_SECRET_KEY="s3cret",
                             TICKWIRE_API_TOKEN="s3cret", KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                             KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD="s3cret")
    shown = str(settings.redacted()) + repr(settings) + str(settings)
    assert "s3cret" not in shown
    assert redact_url(url).endswith(url.rsplit("@", 1)[1]) and "***" in redact_url(url)
