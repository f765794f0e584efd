"""schemas.topics is the one place topic names and Redis keys are spelled."""

import re
from pathlib import Path

import pytest

from schemas.topics import ALL_TOPICS, price_channel, price_key, symbol_from_price_channel

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ["producers", "processors", "consumers", "deploy", "tickwire"]


def test_redis_names_given_symbol_match_the_documented_formats() -> None:
    assert price_key("AAPL") == "price:AAPL"
    assert price_channel("AAPL") == "price.updated.AAPL"
    assert symbol_from_price_channel(price_channel("BRK.B")) == "BRK.B"


@pytest.mark.parametrize("literal", [t.name for t in ALL_TOPICS] + ["price:", "price.updated."])
def test_code_given_contract_names_never_spells_them_outside_schemas(literal: str) -> None:
    pattern = re.compile(rf"""["']{re.escape(literal)}""")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in CODE_DIRS
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == [], f"{literal!r} spelled outside schemas/: {offenders}"
