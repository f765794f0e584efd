"""Pure parts of tail, replay and diff: bounds as users write them, run ids, field-by-field comparison."""

import pytest

from consumers.tools.bounds import OffsetBound, TimeBound, parse_bound, parse_offsets, parse_time
from consumers.tools.diff import ABSENT, Difference, compare_section
from consumers.tools.run_manifest import check_run_id
from consumers.tools.tail import GENERIC_COLUMNS, TailRecord, columns_for
from schemas.timestamps import NS_PER_SECOND, parse_ns
from schemas.topics import PRICES, QUOTES_RAW, QUOTES_REJECTED, namespaced, price_key, replay_namespace, replay_topic

NOW = parse_ns("2026-11-21T12:00:00Z")


def test_parse_offsets_given_all_forms_gives_default_and_per_partition_offsets() -> None:
    assert parse_offsets("120") == OffsetBound(120, {})
    assert parse_offsets("0:5, 3:98") == OffsetBound(None, {0: 5, 3: 98})
    assert parse_offsets("*:7,2:1").for_partition(2) == 1
    assert parse_offsets("*:7,2:1").for_partition(0) == 7


@pytest.mark.parametrize("text", ["", "x", "1:-3", "-1", "a:1"])
def test_parse_offsets_given_nonsense_raises_one_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_offsets(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-21T11:00:00Z", NOW - 3600 * NS_PER_SECOND),
    ("2026-11-21T11:00:00", NOW - 3600 * NS_PER_SECOND),  # no zone: UTC
    ("2026-11-21T12:00:00+01:00", NOW - 3600 * NS_PER_SECOND),
    ("15m", NOW - 900 * NS_PER_SECOND),
    ("-2h", NOW - 7200 * NS_PER_SECOND),
    ("250ms", NOW - 250_000_000),
    ("now", NOW),
])
def test_parse_time_given_absolute_or_relative_time_gives_nanoseconds(text: str, expected: int) -> None:
    assert parse_time(text, now=NOW) == TimeBound(expected)


def test_parse_bound_given_offset_and_time_together_refuses() -> None:
    with pytest.raises(ValueError, match="not both"):
        parse_bound("5", "15m", "from")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_bound(None, "yesterday", "from")
    assert parse_bound(None, None, "to") is None


@pytest.mark.parametrize("run_id", ["live", "", "a b", "x" * 65, "../x", "-x"])
def test_check_run_id_given_unsafe_names_refuses(run_id: str) -> None:
    with pytest.raises(ValueError, match="bad run id"):
        check_run_id(run_id)


def test_replay_names_given_run_never_collide_with_live_names() -> None:
    assert namespaced(price_key("AAPL"), replay_namespace("r1")) == "replay:r1:price:AAPL"
    assert namespaced(price_key("AAPL")) == price_key("AAPL")
    assert replay_topic(PRICES.name, "r1") == "prices.replay.r1"


def test_compare_section_given_equal_fields_finds_nothing() -> None:
    state = {"mid": "1.5", "timestamp": "t"}
    assert compare_section("AAPL", "price", state, dict(state)) == []


def test_compare_section_given_one_changed_field_names_exactly_it() -> None:
    left = {"mid": "1.5", "bid": "1.4", "timestamp": "t1"}
    right = {"mid": "1.6", "bid": "1.4", "timestamp": "t1"}
    assert compare_section("AAPL", "price", left, right) == [Difference("AAPL", "price.mid", "1.5", "1.6")]


def test_compare_section_given_state_missing_on_one_side_reports_one_difference() -> None:
    left = {"mid": "1.5", "bid": "1.4"}
    right = {"mid": None, "bid": None}
    assert compare_section("AAPL", "price", left, right) == [
        Difference("AAPL", "price", "mid=1.5, bid=1.4", ABSENT)
    ]


def test_compare_section_given_a_reason_only_one_side_has_treats_it_as_absent() -> None:
    left = {"accepted": "3", "rejected": "1", "rejected.stale": "1"}
    right = {"accepted": "3", "rejected": "0"}
    assert compare_section("MSFT", "count", left, right) == [
        Difference("MSFT", "count.rejected", "1", "0"), Difference("MSFT", "count.rejected.stale", "1", ABSENT)
    ]


def test_columns_for_given_live_or_replay_topics_picks_their_fields() -> None:
    assert [c[0] for c in columns_for(QUOTES_RAW.name)][:2] == ["bid", "bid size"]
    assert columns_for(replay_topic(PRICES.name, "r1")) == columns_for(PRICES.name)
    assert [c[0] for c in columns_for(replay_topic(QUOTES_REJECTED.name, "r1"))] == ["reason", "detail"]
    assert columns_for("somebody.elses.topic") == GENERIC_COLUMNS


def test_tail_record_symbol_given_value_key_or_account_key_finds_it() -> None:
    assert TailRecord("t", 0, 0, None, "X", {"S": "AAPL"}).symbol == "AAPL"
    assert TailRecord("t", 0, 0, None, "acct:MSFT", {"qty": 1}).symbol == "MSFT"
    assert TailRecord("t", 0, 0, None, "GOOGL", "not json").symbol == "GOOGL"
