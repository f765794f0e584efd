"""Managed Kafka settings (TLS, SASL) become the same options for every aiokafka client."""

import ast
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from tickwire.kafka import aiokafka_security
from tickwire.settings import TickwireSettings


def test_security_given_plaintext_default_adds_no_client_options() -> None:
    settings = TickwireSettings(kafka_security_protocol="PLAINTEXT")

    assert aiokafka_security(settings) == {}


def test_security_given_sasl_ssl_scram_builds_tls_and_sasl_options() -> None:
    settings = TickwireSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                             kafka_sasl_username="svc", kafka_sasl_password="s3cret")

    options = aiokafka_security(settings)

    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "svc", "sasl_plain_password": "s3cret"}
    assert "s3cret" not in str(settings.redacted())


def test_security_given_ssl_only_gives_a_tls_context() -> None:
    settings = TickwireSettings(kafka_security_protocol="SSL")

    assert set(aiokafka_security(settings)) == {"security_protocol", "ssl_context"}
    assert isinstance(aiokafka_security(settings)["ssl_context"], ssl.SSLContext)


def test_settings_given_sasl_without_password_fails_with_one_clear_error() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        TickwireSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="svc")


def test_every_kafka_client_given_a_managed_cluster_can_take_the_tls_and_sasl_options() -> None:
    """Each aiokafka client in the code takes ``**options`` (from ``aiokafka_security``); the embedded broker's
    readiness probe, which only ever talks to the local broker it started, is the one exception."""
    root = Path(__file__).resolve().parents[2]
    clients = ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient")
    missing = []
    for folder in ("producers", "processors", "consumers", "deploy", "tickwire"):
        for path in (root / folder).rglob("*.py"):
            if "embedded" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                name = getattr(node, "func", None)
                name = getattr(name, "id", getattr(name, "attr", None))
                if isinstance(node, ast.Call) and name in clients and not any(k.arg is None for k in node.keywords):
                    missing.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert missing == [], f"aiokafka clients without **client_options: {missing}"
