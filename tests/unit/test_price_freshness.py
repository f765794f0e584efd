"""price_freshness: a stall is "quotes waiting, nothing processed" or "the stage stopped reporting"."""

from consumers.api.price_freshness import price_freshness
from schemas.events import PartitionProgress
from schemas.timestamps import NS_PER_SECOND, format_ns

NOW = 1_800_000_000 * NS_PER_SECOND


def progress(offset: int, highwater: int | None, advanced_ago_s: float, updated_ago_s: float = 0.5
             ) -> PartitionProgress:
    return PartitionProgress(offset=offset, highwater=highwater,
                             advanced_at=format_ns(NOW - int(advanced_ago_s * NS_PER_SECOND)),
                             updated_at=format_ns(NOW - int(updated_ago_s * NS_PER_SECOND)))


def test_freshness_given_an_idle_partition_with_nothing_waiting_is_fresh() -> None:
    result = price_freshness({0: progress(100, 100, advanced_ago_s=600)}, NOW)

    assert result.stale is False


def test_freshness_given_quotes_waiting_and_no_progress_for_20s_is_stale_and_says_where() -> None:
    result = price_freshness({0: progress(100, 100, 1), 3: progress(100, 250, advanced_ago_s=20)}, NOW)

    assert result.stale and result.detail == "prices stopped: quotes.raw[3]: 150 quotes waiting, none processed for 20s"


def test_freshness_given_a_stage_that_stopped_reporting_is_stale() -> None:
    result = price_freshness({1: progress(5, 5, advanced_ago_s=40, updated_ago_s=40)}, NOW)

    assert result.stale and "stopped reporting 40s ago" in result.detail


def test_freshness_given_no_reports_is_unknown_not_a_stall() -> None:
    result = price_freshness({}, NOW)

    assert result.stale is False and "no price stage" in result.detail
