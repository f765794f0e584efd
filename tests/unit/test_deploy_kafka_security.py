"""Managed Kafka settings (TLS, SASL) become the same client options for aiokafka and Faust."""

import ssl

import faust
import pytest
from pydantic import ValidationError

from tickwire.kafka import aiokafka_security, faust_credentials
from tickwire.settings import load_settings


def test_security_given_plaintext_default_adds_no_client_options() -> None:
    settings = load_settings(kafka_security_protocol="PLAINTEXT")

    assert aiokafka_security(settings) == {}
    assert faust_credentials(settings) is None


def test_security_given_sasl_ssl_scram_builds_tls_and_sasl_options() -> None:
    settings = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                             kafka_sasl_username="svc", kafka_sasl_password="s3cret")

    options = aiokafka_security(settings)
    credentials = faust_credentials(settings)

    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "svc", "sasl_plain_password": "s3cret"}
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in str(settings.redacted())


def test_security_given_ssl_only_gives_faust_ssl_credentials() -> None:
    settings = load_settings(kafka_security_protocol="SSL")

    assert set(aiokafka_security(settings)) == {"security_protocol", "ssl_context"}
    assert isinstance(faust_credentials(settings), faust.SSLCredentials)


def test_settings_given_sasl_without_password_fails_with_one_clear_error() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        load_settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="svc")
