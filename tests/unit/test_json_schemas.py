"""schemas/json/ is what the models say (regenerate: python tools/json_schemas.py), ships in the wheel, and its
schemas accept what tickwire writes and refuse a renamed field, an unknown one, or a key of the wrong form."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import tomllib
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schemas.events import PnLUpdated, PriceSnapshot, RawQuote, RejectedQuote, RejectReason
from schemas.published import INDEX_FILE, PublishedSchemas
from schemas.topics import ALL_TOPICS, position_key, subscription_key

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "schemas" / "json"
T0 = "2026-12-02T16:45:12.123456789Z"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("json_schemas", ROOT / "tools" / "json_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def published() -> PublishedSchemas:
    return PublishedSchemas.load()


def validator(published: PublishedSchemas, name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(published.texts[name]))


def test_published_schemas_given_the_models_are_up_to_date(tool: ModuleType) -> None:
    committed = {path.name: path.read_text() for path in FOLDER.glob("*.json")}
    expected = tool.render()
    stale = sorted(name for name in committed.keys() | expected.keys() if committed.get(name) != expected.get(name))
    assert stale == [], f"schemas/json/ is stale ({', '.join(stale)}): python tools/json_schemas.py"


def test_generator_given_a_changed_or_extra_file_checks_1_and_rewrites_the_folder(
        tool: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool, "OUT", tmp_path)
    assert tool.main([]) == 0 and tool.main(["--check"]) == 0
    (tmp_path / "topic.prices.value.json").write_text("{}\n")
    (tmp_path / "topic.gone.value.json").write_text("{}\n")
    assert tool.main(["--check"]) == 1

    assert tool.main([]) == 0
    assert tool.main(["--check"]) == 0 and not (tmp_path / "topic.gone.value.json").exists()


def test_index_given_every_topic_names_its_key_and_value_and_every_file(published: PublishedSchemas) -> None:
    entries = published.index.schemas
    for spec in ALL_TOPICS:
        assert entries[f"topic.{spec.name}.key"].part == "key", spec.name
        assert entries[f"topic.{spec.name}.value"].model == spec.value.__name__, spec.name
    assert {path.name for path in FOLDER.glob("*.json")} == {e.file for e in entries.values()} | {INDEX_FILE}
    redis = {e.redis for e in entries.values() if e.kind == "redis"}
    assert {"price:{SYMBOL}", "price.updated.{SYMBOL}", "price.stream.{SYMBOL}", "positions:{account}",
            "pnl:{account}", "pnl_total:{account}", "pnl.updated.{account}", "pnl.stream.{account}",
            "close:{SYMBOL}", "trade:{SYMBOL}", "tickwire:status:ingest"} == redis


def test_every_schema_given_the_2020_12_metaschema_is_valid(published: PublishedSchemas) -> None:
    for name, text in published.texts.items():
        schema = json.loads(text)
        assert schema["$schema"] == published.index.dialect, name
        Draft202012Validator.check_schema(schema)


def _price() -> dict[str, Any]:
    return json.loads(PriceSnapshot(symbol="BRK.B", bid=Decimal("1.5"), ask=Decimal("1.52"), mid=Decimal("1.51"),
                                    spread=Decimal("0.02"), spread_bps=Decimal("132.45"), bid_size=1, ask_size=2,
                                    timestamp=T0, exchange=None).to_json())


def _pnl_update() -> dict[str, Any]:
    return json.loads(PnLUpdated(account="fund-1", symbol="AAPL", qty=Decimal(-5), mark_price=None,
                                 unrealized_pnl=None, price_source="none", total_unrealized=Decimal("-0.05"),
                                 timestamp=T0).to_json())


def _rejected() -> dict[str, Any]:
    return json.loads(RejectedQuote(reason=RejectReason.CROSSED_MARKET, detail="ask < bid", symbol=None,
                                    payload="not json", source_topic="quotes.raw", source_partition=0,
                                    source_offset=7, rejected_at=T0).to_json())


@pytest.mark.parametrize(("name", "make", "field", "wrong"), [
    ("redis.price", _price, "bid", 1.5),  # a decimal as a JSON number
    ("redis.pnl.updated", _pnl_update, "total_unrealized", "-0.05E+0"),
    ("topic.quotes.rejected.value", _rejected, "source_offset", "7"),
])
def test_value_schema_given_what_to_json_writes_accepts_it_and_refuses_drift(
        published: PublishedSchemas, name: str, make: Any, field: str, wrong: object) -> None:
    check = validator(published, name)
    value = make()
    check.validate(value)
    renamed = {("renamed_" + k if k == field else k): v for k, v in value.items()}

    assert not check.is_valid(renamed), "a renamed field must fail: the old one is required, the new one unknown"
    assert not check.is_valid({k: v for k, v in value.items() if k != field}), "every field is required"
    assert not check.is_valid({**value, field: wrong})


def test_decimal_fields_given_exponent_notation_are_refused(published: PublishedSchemas) -> None:
    check = validator(published, "redis.price")
    assert not check.is_valid({**_price(), "mid": "1.51E+0"})
    assert check.is_valid({**_price(), "mid": "-0.00"})


def test_raw_topic_schema_given_an_alpaca_quote_keeps_its_unknown_fields_and_optional_ones(
        published: PublishedSchemas) -> None:
    check = validator(published, "topic.quotes.raw.value")
    quote = {"T": "q", "S": "AAPL", "bp": 1.0, "bs": 1, "ap": 1.1, "as": 2, "t": T0, "received_at": T0}
    check.validate(quote)
    check.validate({**quote, "bx": "V", "c": ["R"], "new_alpaca_field": 1, "source": "backfill", "gap_id": "g"})
    assert not check.is_valid({k: v for k, v in quote.items() if k != "bp"})
    assert not check.is_valid({**quote, "source": "replay"})
    assert RawQuote.model_validate(quote).bid_price == 1.0


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("topic.prices.key", ["AAPL", "BRK.B", "BF/A"], ["aapl", "", "AAPL:X", "TOOLONGSYMBOL"]),
    ("topic.positions.key", [position_key("fund-1", "BRK.B"), position_key("default", "AAPL")],
     ["AAPL", "fund 1:AAPL", ":AAPL", "fund-1:aapl"]),
    ("topic.subscriptions.key", [subscription_key("config", "AAPL"), subscription_key("positions", "MSFT")],
     ["AAPL", "config:", "config:aapl"]),
    ("topic.quotes.rejected.key", ["AAPL", "", "not a symbol"], [7]),
])
def test_key_schema_given_keys_accepts_tickwire_keys_only(
        published: PublishedSchemas, name: str, good: list[str], bad: list[object]) -> None:
    check = validator(published, name)
    assert [key for key in good if not check.is_valid(key)] == []
    assert [key for key in bad if check.is_valid(key)] == []


def test_package_data_given_the_published_files_ships_every_one() -> None:
    """Test that the wheel (and so the Docker image, which installs it) holds every file the API serves."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data.get("schemas", [])
    files = [f"json/{path.name}" for path in FOLDER.glob("*.json")]
    assert files and [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
