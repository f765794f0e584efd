"""Stream ids and positions: the SSE event id a browser sends back, and where each stream resumes from it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.stream_reader import MAX_SEQ, ZERO, Position, before, format_id, parse_id

ids = st.tuples(st.integers(0, 2**48), st.integers(0, MAX_SEQ))
entries = st.tuples(st.integers(1, 2**48), st.integers(0, MAX_SEQ))  # Redis never stores 0-0
names = st.sampled_from(["pnl.stream.default", "price.stream.AAPL", "price.stream.MSFT", "price.stream.A"])


@given(ids, names)
def test_position_token_given_any_position_parses_back_to_it(stream_id: tuple[int, int], stream: str) -> None:
    position = Position(stream_id, stream)
    assert Position.parse(position.token()) == position
    assert parse_id(format_id(stream_id)) == stream_id


@pytest.mark.parametrize("token", ["", "abc", "12-3", "12-x@s", "-1-0@s", "12-3@", f"1-{MAX_SEQ + 1}@s", "1@s",
                                   f"{2**64 - 1}-{MAX_SEQ}@s", f"{2**64}-0@s", "\u0661-0@s"])
def test_position_parse_given_something_else_says_so(token: str) -> None:
    with pytest.raises(ValueError):
        Position.parse(token)


def test_before_given_ids_is_the_greatest_smaller_one() -> None:
    assert before((5, 3)) == (5, 2)
    assert before((5, 0)) == (4, MAX_SEQ)
    assert before(ZERO) == ZERO


@given(ids, names, names, entries)
def test_cursor_given_a_position_resumes_each_stream_right_after_what_it_covers(
        stream_id: tuple[int, int], stream: str, other: str, entry: tuple[int, int]) -> None:
    """An entry of ``other`` comes after the position exactly when reading ``other`` after its cursor finds it."""
    position = Position(stream_id, stream)
    assert (Position(entry, other) > position) == (entry > position.cursor(other))
