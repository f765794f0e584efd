"""Settings come from the documented environment variables."""

import pytest
from pydantic import ValidationError

from producers.settings import IngestSettings
from tickwire.settings import redact_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("ALPACA_", "APCA_", "TICKWIRE_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)


def test_settings_given_nothing_set_use_documented_defaults() -> None:
    settings = IngestSettings()
    assert settings.symbols == ("AAPL", "MSFT", "GOOGL")
    assert settings.price_ttl_s == 300
    assert settings.alpaca_feed == "iex"
    assert settings.uses_local_feed
    assert settings.stream_url == "wss://stream.data.alpaca.markets/v2/iex"


def test_settings_given_symbols_normalises_and_dedupes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWIRE_SYMBOLS", " aapl, msft,AAPL ,brk.b")
    assert IngestSettings().symbols == ("AAPL", "MSFT", "BRK.B")


def test_settings_given_bad_symbol_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWIRE_SYMBOLS", "AAPL,$$$")
    with pytest.raises(ValidationError, match=r"invalid symbol '\$\$\$'"):
        IngestSettings()


def test_settings_given_alpaca_native_key_names_accepts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "key-id")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cret")
    settings = IngestSettings()
    assert settings.alpaca_api_key is not None and settings.alpaca_api_key.get_secret_value() == "key-id"
    assert not settings.uses_local_feed
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.redacted())


def test_settings_given_stream_url_uses_it_and_no_local_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_STREAM_URL", "ws://127.0.0.1:9/v2/test")
    monkeypatch.setenv("ALPACA_FEED", "delayed_sip")
    settings = IngestSettings()
    assert settings.stream_url == "ws://127.0.0.1:9/v2/test"
    assert not settings.uses_local_feed
    assert settings.quote_age_limit_s == 960.0


def test_settings_given_unknown_feed_rejects_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_FEED", "nasdaq")
    with pytest.raises(ValidationError, match="ALPACA_FEED"):
        IngestSettings()


def test_redact_url_given_password_hides_it() -> None:
    assert redact_url("rediss://user:hunter2@cache:6380/0") == "rediss://user:***@cache:6380/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("REDIS_URL", "localhost:6379", r"needs a scheme: redis://.*example: redis://localhost:6379/0"),
    ("REDIS_URL", "redis://", "names no host"),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost", r"'localhost' is not host:port \(example: localhost:9092\)"),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092,kafka:x", r"'kafka:x' is not host:port"),
    ("TICKWIRE_SYMBOLS", ",,", "name at least one symbol"),
    ("ALPACA_STREAM_URL", "stream.data.alpaca.markets/v2/iex", "is not a ws/wss URL"),
])
def test_settings_given_malformed_value_names_the_variable_and_a_good_example(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message) as raised:
        IngestSettings()
    assert raised.value.errors()[0]["loc"] == (variable,)


def test_settings_given_process_classes_time_fields_are_seconds() -> None:
    from deploy.settings import RunSettings

    names = [name for name in RunSettings.model_fields if name.endswith(("_ms", "_seconds"))]
    assert names == []
    variables = [variable for variable, _, _ in RunSettings.environment() if variable.endswith("_MS")]
    assert variables == []
