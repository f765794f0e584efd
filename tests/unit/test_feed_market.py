"""Unit tests of the synthetic market's derived messages (daily/updated bars, LULD, statuses,
corrections, cancels), its previous close, and the session calendar."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from alpaca_feed.hours import MarketHours, Phase
from alpaca_feed.market import HALF_MINUTE_NS, MINUTE_NS, EventRates, MarketModel
from alpaca_feed.seed_prices import SEED_PRICES, seed_price
from schemas.timestamps import NS_PER_SECOND

T0 = 1_700_000_000 * NS_PER_SECOND  # 2023-11-14 22:13:20Z, a Tuesday
STEP_NS = 100_000_000  # 10 quotes per second


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * NS_PER_SECOND


def drive(model: MarketModel, symbol: str, start: int, seconds: float) -> list[dict[str, Any]]:
    """Step ``symbol`` at 10 quotes/s from ``start`` and run the clock's events, as the feed does."""
    events: list[dict[str, Any]] = []
    for step in range(int(seconds * 10)):
        now = start + step * STEP_NS
        events.extend(model.timed_events(now))
        events.extend(model.next_events(symbol, now))
    return events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["T"] == kind]


def test_every_stock_message_type_is_generated_with_every_field() -> None:
    rates = EventRates(late_trade=1.0, correction=0.05, cancel=0.05, pause=0.3, pause_seconds=2.0)
    events = drive(MarketModel(4, events=rates), "AAPL", T0, 300)
    fields = {
        "q": {"T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t"},
        "t": {"T", "S", "i", "x", "p", "s", "c", "z", "t"},
        "b": {"T", "S", "o", "h", "l", "c", "v", "n", "vw", "t"},
        "d": {"T", "S", "o", "h", "l", "c", "v", "n", "vw", "t"},
        "u": {"T", "S", "o", "h", "l", "c", "v", "n", "vw", "t"},
        "s": {"T", "S", "sc", "sm", "rc", "rm", "t", "z"},
        "l": {"T", "S", "u", "d", "i", "t", "z"},
        "c": {"T", "S", "x", "oi", "op", "os", "oc", "ci", "cp", "cs", "cc", "z", "t"},
        "x": {"T", "S", "i", "x", "p", "s", "a", "z", "t"},
    }
    for kind, keys in fields.items():
        found = of(events, kind)
        assert found, f"no {kind!r} message in 5 simulated minutes"
        for message in found:
            assert set(message) == keys and next(iter(message)) == "T", message
            assert isinstance(message["t"], int)


def test_daily_bar_holds_all_of_todays_trades_and_is_stamped_at_midnight_new_york() -> None:
    model = MarketModel(2, events=EventRates.none())
    events = drive(model, "MSFT", T0, 150)
    trades = of(events, "t")
    daily = of(events, "d")
    assert len(daily) == len(of(events, "b")) == 2  # one after each finished minute
    last = daily[-1]
    counted = [t for t in trades if t["t"] < MINUTE_NS * (T0 // MINUTE_NS + 2)]
    assert last["n"] == len(counted) and last["v"] == sum(t["s"] for t in counted)
    assert last["t"] == ns("2023-11-14T05:00:00+00:00")  # EST midnight
    assert model.daily_bar("MSFT")["n"] == len(trades)
    summer = MarketHours().day_start(ns("2024-07-01T15:00:00+00:00"))
    assert summer == ns("2024-07-01T04:00:00+00:00")  # EDT midnight


def test_previous_close_is_fixed_by_seed_and_rolls_over_at_midnight() -> None:
    model = MarketModel(9, events=EventRates.none())
    prev = model.previous_daily_bar("NVDA", T0)
    assert prev == MarketModel(9).previous_daily_bar("NVDA", T0)
    assert prev["c"] == model.previous_close("NVDA")
    assert prev["l"] <= min(prev["o"], prev["c"]) <= max(prev["o"], prev["c"]) <= prev["h"]
    assert prev["t"] == ns("2023-11-13T05:00:00+00:00")
    start = model.start_price("NVDA")
    assert abs(start - prev["c"]) <= 0.021 * prev["c"]  # an overnight gap of at most 2%

    midnight = ns("2023-11-15T05:00:00+00:00")
    before = drive(model, "NVDA", midnight - 30 * NS_PER_SECOND, 60)
    last_today = [t for t in of(before, "t") if t["t"] < midnight][-1]
    assert model.previous_close("NVDA") == last_today["p"]
    assert model.daily_bar("NVDA")["t"] == midnight
    assert model.previous_daily_bar("NVDA", midnight + 1)["t"] == ns("2023-11-14T05:00:00+00:00")


def test_late_trade_amends_the_finished_bar_and_arrives_as_an_updated_bar_at_the_half_minute() -> None:
    model = MarketModel(3, events=EventRates(late_trade=1.0, correction=0, cancel=0, pause=0))
    minute = (T0 // MINUTE_NS + 1) * MINUTE_NS
    events = drive(model, "AMD", minute, 100)  # bars of minute 0 (at 60 s), update at 90 s
    [bar, *_] = of(events, "b")
    late = [t for t in of(events, "t") if t["t"] < minute + MINUTE_NS and events.index(t) > events.index(bar)]
    [late_trade] = late
    assert minute + MINUTE_NS - NS_PER_SECOND <= late_trade["t"] < minute + MINUTE_NS
    [updated] = [u for u in of(events, "u") if u["t"] == minute]
    assert updated["n"] == bar["n"] + 1 and updated["v"] == bar["v"] + late_trade["s"]
    assert updated["h"] == max(bar["h"], late_trade["p"]) and updated["l"] == min(bar["l"], late_trade["p"])
    position = events.index(updated)
    assert all(e["t"] >= minute + MINUTE_NS + HALF_MINUTE_NS for e in events[position + 1 :] if e["T"] == "q")


def test_corrections_and_cancels_refer_to_the_trade_before_them() -> None:
    model = MarketModel(6, events=EventRates(late_trade=0, correction=0.2, cancel=0.2, pause=0))
    events = drive(model, "TSLA", T0, 120)
    corrections, cancels = of(events, "c"), of(events, "x")
    assert corrections and cancels
    for message in corrections + cancels:
        trade = events[events.index(message) - 1]
        assert trade["T"] == "t" and message["t"] > trade["t"]
        if message["T"] == "c":
            assert (message["oi"], message["op"], message["os"]) == (trade["i"], trade["p"], trade["s"])
            assert message["ci"] > trade["i"] and abs(message["cp"] - trade["p"]) == pytest.approx(0.01)
        else:
            assert (message["i"], message["p"], message["a"]) == (trade["i"], trade["p"], "C")


def test_a_volatility_pause_silences_the_symbol_until_its_resumption() -> None:
    model = MarketModel(1, events=EventRates(late_trade=0, correction=0, cancel=0, pause=1.0, pause_seconds=3.0))
    events = drive(model, "META", (T0 // MINUTE_NS) * MINUTE_NS, 70)
    paused, resumed = of(events, "s")[:2]
    assert (paused["sc"], paused["sm"], paused["rc"], paused["rm"]) == (
        "P", "Volatility Trading Pause", "LUDP", "Volatility Trading Pause"
    )  # fmt: skip
    assert resumed["sc"] == "T" and resumed["sm"] == "Trading Resumption"
    between = events[events.index(paused) + 1 : events.index(resumed)]
    assert not [e for e in between if e["T"] in ("q", "t")]
    assert 3 * NS_PER_SECOND <= resumed["t"] - paused["t"] < 3.2 * NS_PER_SECOND
    assert events.index(resumed) < len(events) - 1 and events[events.index(resumed) + 1]["T"] in ("q", "b", "d")


def test_luld_bands_come_with_the_first_quote_and_after_a_one_percent_move() -> None:
    model = MarketModel(8, events=EventRates.none())
    events = drive(model, "SPY", T0, 1000)
    bands = of(events, "l")
    assert events[1]["T"] == "l" and events[0]["T"] == "q"
    first = bands[0]
    reference = events[0]["bp"]
    assert first["u"] == pytest.approx(reference * 1.05, abs=0.006)
    assert first["d"] == pytest.approx(reference * 0.95, abs=0.006)
    assert first["i"] == "B" and first["z"] == "C"
    for earlier, later in itertools.pairwise(bands):
        quote = events[events.index(later) - 1]
        old_reference = (earlier["u"] + earlier["d"]) / 2
        assert abs(quote["bp"] - old_reference) >= 0.0099 * old_reference


def test_rare_event_rates_do_not_change_the_quote_path() -> None:
    plain = drive(MarketModel(5, events=EventRates.none()), "AAPL", T0, 60)
    busy = drive(MarketModel(5, events=EventRates(late_trade=1, correction=0.3, cancel=0.3, pause=0)), "AAPL", T0, 60)
    assert [q["bp"] for q in of(plain, "q")] == [q["bp"] for q in of(busy, "q")]


@pytest.mark.parametrize(("moving_mid", "every_quote_moves"), [(True, True), (False, False)])
def test_moving_mid_given_every_quote_moves_the_mid_and_by_default_some_do_not(
        moving_mid: bool, every_quote_moves: bool) -> None:
    """Test that ``moving_mid`` moves the mid with every quote (the realistic feed's P&L worst case), which the
    default walk does not."""
    quotes = of(drive(MarketModel(3, events=EventRates.none(), moving_mid=moving_mid), "S001", T0, 200), "q")
    mids = [round(q["bp"] * 100) + round(q["ap"] * 100) for q in quotes]  # twice the mid, in cents
    assert all(a != b for a, b in itertools.pairwise(mids)) is every_quote_moves


@pytest.mark.parametrize(
    ("moment", "phase"),
    [
        ("2024-01-02T14:30:00+00:00", Phase.REGULAR),  # 09:30 EST
        ("2024-01-02T14:29:59+00:00", Phase.PRE),
        ("2024-07-01T13:29:00+00:00", Phase.PRE),  # 09:29 EDT
        ("2024-07-01T20:00:00+00:00", Phase.POST),  # 16:00 EDT
        ("2024-07-02T00:00:00+00:00", Phase.CLOSED),  # 20:00 EDT
        ("2024-07-01T07:59:00+00:00", Phase.CLOSED),  # 03:59 EDT
        ("2024-07-06T15:00:00+00:00", Phase.CLOSED),  # Saturday
    ],
)
def test_us_calendar_phases(moment: str, phase: Phase) -> None:
    hours = MarketHours("us")
    assert hours.phase(ns(moment)) is phase
    assert MarketHours("always").phase(ns(moment)) is Phase.REGULAR
    assert hours.activity(ns(moment)) == {Phase.REGULAR: 1.0, Phase.CLOSED: 0.0}.get(phase, 0.25)


def test_us_calendar_days_opens_and_previous_trading_day() -> None:
    hours = MarketHours("us")
    monday = ns("2024-07-08T15:00:00+00:00")
    assert hours.previous_day_start(monday) == ns("2024-07-05T04:00:00+00:00")  # Friday
    assert MarketHours("always").previous_day_start(monday) == ns("2024-07-07T04:00:00+00:00")
    assert hours.next_open(ns("2024-07-06T15:00:00+00:00")) == ns("2024-07-08T13:30:00+00:00")
    assert hours.opened(ns("2024-07-08T13:30:00+00:00")) and not hours.opened(ns("2024-07-08T13:29:59+00:00"))
    assert hours.open_at(monday) == ns("2024-07-08T13:30:00+00:00")
    assert datetime.fromtimestamp(hours.next_day_start(monday) / NS_PER_SECOND, tz=UTC).hour == 4


def test_daily_bars_wait_for_the_open_on_the_us_calendar() -> None:
    model = MarketModel(2, events=EventRates.none(), hours=MarketHours("us"))
    pre = drive(model, "AAPL", ns("2024-07-08T13:27:00+00:00"), 150)  # 09:27-09:29:30 EDT
    assert of(pre, "b") and not of(pre, "d")
    after = drive(model, "AAPL", ns("2024-07-08T13:30:00+00:00"), 70)
    [daily] = of(after, "d")  # after the 09:31 mark: every trade of the day so far, pre-market included
    first_minute = [t for t in of(after, "t") if t["t"] < ns("2024-07-08T13:31:00+00:00")]
    assert daily["n"] == len(of(pre, "t")) + len(first_minute)
    assert daily["t"] == ns("2024-07-08T04:00:00+00:00")


def test_live_messages_are_stamped_strictly_later_than_the_one_before() -> None:
    rates = EventRates(late_trade=0, correction=0.05, cancel=0.05, pause=0.2, pause_seconds=1.0)
    model = MarketModel(12, events=rates)
    symbols = [f"S{i}" for i in range(40)]  # each first quote brings bands, some a trade at once
    events: list[dict[str, Any]] = []
    for step in range(300):
        for symbol in symbols:
            model.generate(symbol, T0 + step * 1000, 1, events)  # less than a ns per message apart
    assert {e["T"] for e in events} >= {"q", "t", "l", "c", "x"}
    for symbol in symbols:
        # Bars are stamped at their period's start; everything else follows the symbol's own clock.
        stamps = [e["t"] for e in events if e["S"] == symbol and e["T"] not in ("b", "d", "u")]
        assert all(a < b for a, b in itertools.pairwise(stamps)), symbol


@pytest.mark.parametrize(("symbol", "near"), [("AAPL", 230), ("MSFT", 420), ("GOOGL", 170), ("AMZN", 190),
                                              ("TSLA", 250), ("NVDA", 120), ("META", 560)])
def test_well_known_symbols_start_near_their_recent_close_with_their_own_spread(symbol: str, near: float) -> None:
    """Test that a demo symbol opens within 1% of its reference close and quotes inside its spread range."""
    model = MarketModel(5, events=EventRates.none())
    seed = SEED_PRICES[symbol]
    quotes = of(drive(model, symbol, T0, 60), "q")
    assert abs(model.start_price(symbol) - near) <= 0.05 * near
    assert model.previous_close(symbol) == float(seed.close)
    assert abs(quotes[0]["bp"] - float(seed.close)) <= 0.011 * float(seed.close)
    spreads = {round((q["ap"] - q["bp"]) * 100) for q in quotes}
    assert spreads <= set(range(seed.min_spread_cents, seed.max_spread_cents + 1))


def test_unknown_symbols_keep_the_seeded_random_start() -> None:
    """Test that a symbol outside the table still starts at a seeded $20-$500 with a 1-3 cent spread."""
    assert seed_price("ZZTW") is None
    starts = {MarketModel(seed).start_price("ZZTW") for seed in range(5)}
    assert len(starts) == 5 and all(20 <= s <= 500 for s in starts)
    assert MarketModel(3).start_price("ZZTW") == MarketModel(3).start_price("ZZTW")
    quotes = of(drive(MarketModel(3, events=EventRates.none()), "ZZTW", T0, 60), "q")
    assert {round((q["ap"] - q["bp"]) * 100) for q in quotes} <= {1, 2, 3}
