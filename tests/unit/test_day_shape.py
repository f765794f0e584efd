"""The soak's trading day: its rate over time adds up to the day's quotes and has the shape of a day."""

import pytest

from bench.day_shape import DayShape

DAY = DayShape(23_400_000, 90 * 60)  # `make soak`: 6.5 h at 1,000/s compressed into 90 minutes


@pytest.mark.parametrize("day", [DAY, DayShape(600_000, 360), DayShape(1_000, 7, lull_factor=0.2, close_factor=2.0)])
def test_day_shape_given_any_day_integrates_to_its_quotes(day: DayShape) -> None:
    """Test that the phases cover the day without overlap and the rate's integral is exactly the day's quotes."""
    assert day.phases[0].start_s == 0 and day.phases[-1].end_s == day.seconds
    assert all(a.end_s == b.start_s for a, b in zip(day.phases, day.phases[1:], strict=False))
    assert sum(p.rate * (p.end_s - p.start_s) for p in day.phases) == pytest.approx(day.quotes, rel=1e-12)
    assert day.quotes_between(0, day.seconds) == pytest.approx(day.quotes, rel=1e-12)
    assert day.quotes_between(-10, day.seconds + 10) == pytest.approx(day.quotes, rel=1e-12)  # nothing outside


def test_day_shape_given_the_default_day_opens_at_twice_the_average_lulls_below_and_closes_above() -> None:
    """Test the day's shape: the first tenth at 2x the average (8,667/s for `make soak`), a lull around midday
    below the average and below the rest of the day, and a closing burst above the average in the last tenth."""
    average = DAY.average
    assert average == pytest.approx(4_333.33, abs=0.01)
    assert DAY.rate_at(0) == DAY.rate_at(DAY.seconds * 0.1 - 1) == pytest.approx(2 * average)
    assert DAY.quotes_between(0, 540) == pytest.approx(2 * average * 540)  # the first tenth: 9 minutes
    assert DAY.rate_at(DAY.seconds / 2) < min(DAY.rate_at(DAY.seconds * 0.3), DAY.rate_at(DAY.seconds * 0.7)) < average
    assert DAY.phase_at(DAY.seconds / 2).name == "lull"
    assert DAY.rate_at(DAY.seconds - 1) > average and DAY.phase_at(DAY.seconds * 0.9).name == "close"
    assert [p.name for p in DAY.phases] == ["open", "morning", "lull", "afternoon", "close"]
    assert DAY.rate_at(DAY.seconds) == DAY.rate_at(-1) == 0


def test_day_shape_target_rate_given_a_window_across_phases_is_its_quotes_over_its_length() -> None:
    """Test the per-row target: a 5-minute row straddling the end of the opening averages both phases."""
    opening_end = DAY.seconds * 0.1
    expected = (DAY.rate_at(opening_end - 1) * 60 + DAY.rate_at(opening_end) * 240) / 300
    assert DAY.target_rate(opening_end - 60, opening_end + 240) == pytest.approx(expected)
    assert DayShape.flat(1_000, 3_600).target_rate(100, 400) == pytest.approx(1_000)


@pytest.mark.parametrize("kwargs", [
    {"open_factor": 5.0, "close_factor": 4.0},  # the bursts alone hold more than the day
    {"open_share": 0.45},  # the opening runs into the lull
    {"seconds": 0},
])
def test_day_shape_given_an_impossible_day_refuses_it(kwargs: dict[str, float]) -> None:
    """Test that a shape whose special phases leave nothing (or a negative rate) to the rest is refused."""
    with pytest.raises(ValueError):
        DayShape(**{"quotes": 1_000, "seconds": 60, **kwargs})
