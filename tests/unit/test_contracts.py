"""schemas.topics is the one place topic names and Redis keys are spelled."""

import re
from pathlib import Path

import pytest

from schemas.topics import (
    ALL_TOPICS,
    close_key,
    last_trade_key,
    pnl_channel,
    pnl_key,
    pnl_stream,
    pnl_total_key,
    position_key,
    positions_key,
    price_channel,
    price_key,
    price_stream,
    split_position_key,
    symbol_from_price_channel,
)

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ["producers", "processors", "consumers", "deploy", "tickwire"]
# Topic names that are also ordinary words ("positions", "pnl", "prices") would match JSON field names.
DOTTED_TOPICS = [t.name for t in ALL_TOPICS if "." in t.name]
REDIS_PREFIXES = ["price:", "price.updated.", "price.stream.", "pnl:", "pnl.updated.", "pnl.stream.", "pnl_total:",
                  "positions:", "close:", "trade:"]


def test_redis_names_given_symbol_match_the_documented_formats() -> None:
    assert price_key("AAPL") == "price:AAPL"
    assert price_channel("AAPL") == "price.updated.AAPL"
    assert symbol_from_price_channel(price_channel("BRK.B")) == "BRK.B"
    assert (positions_key("acct"), pnl_key("acct"), pnl_total_key("acct")) == (
        "positions:acct", "pnl:acct", "pnl_total:acct")
    assert (pnl_channel("acct"), close_key("AAPL"), last_trade_key("AAPL")) == (
        "pnl.updated.acct", "close:AAPL", "trade:AAPL")
    assert (price_stream("AAPL"), pnl_stream("acct")) == ("price.stream.AAPL", "pnl.stream.acct")


def test_position_key_given_account_and_symbol_round_trips() -> None:
    assert position_key("fund-1", "AAPL") == "fund-1:AAPL"
    assert split_position_key("fund-1:AAPL") == ("fund-1", "AAPL")
    assert split_position_key("AAPL") == ("default", "AAPL")


@pytest.mark.parametrize("literal", DOTTED_TOPICS + REDIS_PREFIXES)
def test_code_given_contract_names_never_spells_them_outside_schemas(literal: str) -> None:
    pattern = re.compile(rf"""["']{re.escape(literal)}""")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in CODE_DIRS
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == [], f"{literal!r} spelled outside schemas/: {offenders}"
