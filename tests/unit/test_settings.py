"""Settings come from the documented environment variables."""

import pytest
from pydantic import ValidationError

from tickwire.settings import Settings, redact_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("ALPACA_", "APCA_", "TICKWIRE_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)


def test_settings_given_nothing_set_use_documented_defaults() -> None:
    settings = Settings()
    assert settings.symbols == ("AAPL", "MSFT", "GOOGL")
    assert settings.price_ttl_seconds == 300
    assert settings.alpaca_feed == "iex"
    assert settings.uses_local_feed
    assert settings.stream_url == "wss://stream.data.alpaca.markets/v2/iex"


def test_settings_given_symbols_normalises_and_dedupes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWIRE_SYMBOLS", " aapl, msft,AAPL ,brk.b")
    assert Settings().symbols == ("AAPL", "MSFT", "BRK.B")


def test_settings_given_bad_symbol_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWIRE_SYMBOLS", "AAPL,$$$")
    with pytest.raises(ValidationError, match=r"invalid symbol '\$\$\$'"):
        Settings()


def test_settings_given_alpaca_native_key_names_accepts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "key-id")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cret")
    settings = Settings()
    assert settings.alpaca_api_key is not None and settings.alpaca_api_key.get_secret_value() == "key-id"
    assert not settings.uses_local_feed
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.redacted())


def test_settings_given_stream_url_uses_it_and_no_local_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_STREAM_URL", "ws://127.0.0.1:9/v2/test")
    monkeypatch.setenv("ALPACA_FEED", "delayed_sip")
    settings = Settings()
    assert settings.stream_url == "ws://127.0.0.1:9/v2/test"
    assert not settings.uses_local_feed
    assert settings.quote_age_limit_seconds == 960.0


def test_settings_given_unknown_feed_rejects_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_FEED", "nasdaq")
    with pytest.raises(ValidationError, match="ALPACA_FEED"):
        Settings()


def test_redact_url_given_password_hides_it() -> None:
    assert redact_url("rediss://user:hunter2@cache:6380/0") == "rediss://user:***@cache:6380/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
