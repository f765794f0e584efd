"""Unit tests of the local Alpaca feed: wire encoding/decoding, subscriptions and the market model."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import msgpack
import orjson
import pytest

from alpaca_feed.market import EXCHANGES, MINUTE_NS, EventRates, MarketModel
from alpaca_feed.protocol import (
    MAX_FRAME_BYTES,
    Encoding,
    ProtocolError,
    assemble_frames,
    decode_client_message,
    encode_frame,
    encode_message,
    error_message,
    timestamp_to_ns,
    with_type_first,
)
from alpaca_feed.subscriptions import STOCK_ACK_KEYS, Subscriptions
from schemas.timestamps import NS_PER_SECOND

T_NS = 1_700_000_000_123_456_789


def _quote(t: object = T_NS) -> dict[str, object]:
    return {"T": "q", "S": "AAPL", "bx": "V", "bp": 189.5, "bs": 3, "ax": "Q", "ap": 189.52, "as": 1,
            "c": ["R"], "z": "C", "t": t}  # fmt: skip


# --- encoding ---------------------------------------------------------------------------------


def test_msgpack_timestamp_is_ext_minus_one_with_exact_nanoseconds() -> None:
    packed = encode_message({"T": "t", "t": T_NS}, Encoding.MSGPACK)
    # Same bytes as the reference capture: fixext8 (d7) with ext type -1 (ff).
    assert packed == bytes.fromhex("82a154a174a174d7ff1d6f34546553f100")
    decoded = msgpack.unpackb(packed)
    assert isinstance(decoded["t"], msgpack.Timestamp)
    assert decoded["t"].to_unix_nano() == T_NS


def test_msgpack_frame_is_an_array_of_maps_with_type_first() -> None:
    frame = encode_frame([with_type_first({"S": "AAPL", "p": 1.5, "T": "t", "t": T_NS})], Encoding.MSGPACK)
    [message] = msgpack.unpackb(frame)
    assert next(iter(message)) == "T"
    assert message["t"] == msgpack.Timestamp.from_unix_nano(T_NS)


def test_json_timestamp_is_trimmed_rfc3339() -> None:
    [message] = orjson.loads(encode_frame([_quote()], Encoding.JSON))
    assert message["t"] == "2023-11-14T22:13:20.123456789Z"
    assert next(iter(message)) == "T"
    [whole] = orjson.loads(encode_frame([{"T": "b", "t": 1_700_000_040 * NS_PER_SECOND}], Encoding.JSON))
    assert whole["t"] == "2023-11-14T22:14:00Z"
    [trimmed] = orjson.loads(encode_frame([{"T": "q", "t": 1_700_000_000_208_000_000}], Encoding.JSON))
    assert trimmed["t"] == "2023-11-14T22:13:20.208Z"


def test_sizes_are_ints_and_prices_floats_on_the_wire() -> None:
    [message] = msgpack.unpackb(encode_frame([_quote()], Encoding.MSGPACK))
    assert type(message["bs"]) is int and type(message["as"]) is int
    assert type(message["bp"]) is float and type(message["ap"]) is float


def test_timestamp_inputs_normalise_to_ns() -> None:
    assert timestamp_to_ns(msgpack.Timestamp.from_unix_nano(T_NS)) == T_NS
    assert timestamp_to_ns(datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)) == T_NS - 789
    assert timestamp_to_ns("not-a-time") == "not-a-time"  # passed through for robustness tests


def test_with_type_first_requires_type() -> None:
    with pytest.raises(ValueError, match="no 'T'"):
        with_type_first({"S": "AAPL"})


def test_encoding_chosen_from_content_type() -> None:
    assert Encoding.from_content_type("application/msgpack") is Encoding.MSGPACK
    assert Encoding.from_content_type("application/msgpack; charset=binary") is Encoding.MSGPACK
    assert Encoding.from_content_type("application/json") is Encoding.JSON
    assert Encoding.from_content_type(None) is Encoding.JSON


def test_error_messages_use_alpacas_exact_text() -> None:
    assert error_message(409) == {"T": "error", "code": 409, "msg": "insufficient subscription"}
    assert error_message(406)["msg"] == "connection limit exceeded"


@pytest.mark.parametrize("encoding", list(Encoding))
def test_batches_split_below_the_frame_limit_and_keep_order(encoding: Encoding) -> None:
    messages = [{**_quote(T_NS + i), "i": i} for i in range(6000)]  # ~100 B each: several frames
    frames = assemble_frames([encode_message(m, encoding) for m in messages], encoding)
    assert len(frames) > 1
    assert all(len(frame) <= MAX_FRAME_BYTES for frame in frames)
    decode = msgpack.unpackb if encoding is Encoding.MSGPACK else orjson.loads
    assert [m["i"] for frame in frames for m in decode(frame)] == list(range(6000))


# --- decoding ---------------------------------------------------------------------------------


def test_decode_by_opcode_binary_is_msgpack_text_is_json() -> None:
    request = {"action": "subscribe", "quotes": ["AAPL"]}
    assert decode_client_message(msgpack.packb(request)) == request
    assert decode_client_message(orjson.dumps(request).decode()) == request


@pytest.mark.parametrize("payload", [b"\xc1", "{not json", b"\x92\x01"])
def test_undecodable_client_messages_are_invalid_syntax(payload: bytes | str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(payload)
    assert caught.value.code == 400


# --- subscriptions ----------------------------------------------------------------------------


def test_subscription_ack_has_nine_keys_and_mirrors_trades() -> None:
    subs = Subscriptions("iex")
    subs.add(subs.parse_request({"trades": ["AAPL"], "quotes": ["MSFT", "AAPL"], "action": "subscribe"}))
    ack = subs.ack()
    assert list(ack) == ["T", *STOCK_ACK_KEYS]
    assert ack["corrections"] == ack["cancelErrors"] == ack["trades"] == ["AAPL"]
    assert ack["quotes"] == ["MSFT", "AAPL"]
    assert ack["updatedBars"] == []


def test_subscription_ack_on_test_feed_has_three_keys() -> None:
    subs = Subscriptions("test")
    subs.add(subs.parse_request({"quotes": ["FAKEPACA"]}))
    assert subs.ack() == {"T": "subscription", "trades": [], "quotes": ["FAKEPACA"], "bars": []}


def test_subscribe_is_additive_and_unsubscribe_subtracts() -> None:
    subs = Subscriptions("sip")
    subs.add({"quotes": ["AAPL"]})
    subs.add({"quotes": ["MSFT"], "bars": ["*"]})
    subs.remove({"quotes": ["AAPL"]})
    assert subs.symbols("quotes") == ["MSFT"]
    assert subs.wants("bars", "ANYTHING") and not subs.wants("quotes", "AAPL")
    assert subs.covers("bars", ["X", "Y"]) and not subs.covers("quotes", ["AAPL"])


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"quotes": ["aapl"]}, 400),  # badly formatted symbol
        ({"quotes": "AAPL"}, 400),  # not a list
        ({"quotes": [1]}, 400),
        ({"bogus": ["AAPL"]}, 400),
        ({"corrections": ["AAPL"]}, 410),  # derived channel
    ],
)
def test_invalid_subscriptions_are_refused_without_change(request_: dict[str, object], code: int) -> None:
    subs = Subscriptions("iex")
    with pytest.raises(ProtocolError) as caught:
        subs.parse_request({"action": "subscribe", **request_})
    assert caught.value.code == code


def test_test_feed_refuses_channels_it_lacks() -> None:
    with pytest.raises(ProtocolError) as caught:
        Subscriptions("test").parse_request({"statuses": ["FAKEPACA"]})
    assert caught.value.code == 410


# --- market model -----------------------------------------------------------------------------


def _run_model(seed: int, symbol: str = "AAPL", steps: int = 400) -> list[dict[str, object]]:
    model = MarketModel(seed, events=EventRates.none())
    events: list[dict[str, object]] = []
    for step in range(steps):
        events.extend(model.next_events(symbol, T_NS + step * 100_000_000))  # 10 per second
    return events


def test_same_seed_gives_the_same_sequence() -> None:
    assert _run_model(7) == _run_model(7)
    assert _run_model(7) != _run_model(8)
    assert MarketModel(7).start_price("AAPL") == MarketModel(7).start_price("AAPL")


def test_symbol_sequence_is_independent_of_other_symbols() -> None:
    alone = _run_model(3, "MSFT", steps=50)
    model = MarketModel(3)
    mixed = []
    for step in range(50):
        model.next_events("AAPL", T_NS + step)
        mixed.extend(model.next_events("MSFT", T_NS + step * 100_000_000))
    assert mixed == alone


def test_quotes_are_sane() -> None:
    events = _run_model(1)
    quotes = [e for e in events if e["T"] == "q"]
    assert len(quotes) == 400
    start = MarketModel(1).start_price("AAPL")
    assert 20 <= start <= 500
    for quote in quotes:
        bid, ask = quote["bp"], quote["ap"]
        assert isinstance(bid, float) and isinstance(ask, float)
        assert bid < ask and 1 <= round((ask - bid) * 100) <= 3
        assert round(bid * 100) == pytest.approx(bid * 100, abs=1e-6)  # 0.01 tick
        assert isinstance(quote["bs"], int) and 1 <= quote["bs"] <= 10
        assert isinstance(quote["as"], int) and 1 <= quote["as"] <= 10
        assert quote["bx"] in EXCHANGES and quote["ax"] in EXCHANGES
        assert list(quote["c"]) == ["R"] and quote["z"] == "C"  # a shared tuple; an array on the wire
    stamps = [q["t"] for q in quotes]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_quote_timestamps_strictly_increase_even_for_the_same_clock_value() -> None:
    model = MarketModel(0)
    stamps = [e["t"] for _ in range(20) for e in model.next_events("AAPL", T_NS)]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_trades_are_about_a_quarter_of_quotes_and_inside_the_quote() -> None:
    events = _run_model(2, steps=2000)
    trades = [e for e in events if e["T"] == "t"]
    assert 0.18 < len(trades) / 2000 < 0.32
    last_quote: dict[str, object] = {}
    for event in events:
        if event["T"] == "q":
            last_quote = event
        elif event["T"] == "t":
            assert last_quote["bp"] <= event["p"] <= last_quote["ap"]
            assert event["t"] > last_quote["t"]
            assert list(event["c"]) == ["@"] and event["x"] in EXCHANGES
            assert isinstance(event["s"], int) and event["s"] > 0 and isinstance(event["i"], int)
    assert [t["i"] for t in trades] == list(range(1, len(trades) + 1))


def test_bars_are_built_from_each_minutes_trades() -> None:
    model = MarketModel(5, events=EventRates.none())
    minute0 = (T_NS // MINUTE_NS) * MINUTE_NS
    events: list[dict[str, object]] = []
    for step in range(1500):  # 150 s at 10 quotes/s: two complete minutes, one open
        events.extend(model.next_events("AAPL", minute0 + step * 100_000_000))
    events.extend(model.close_bars(minute0 + 3 * MINUTE_NS))
    bars = [e for e in events if e["T"] == "b"]
    assert [b["t"] for b in bars] == [minute0, minute0 + MINUTE_NS, minute0 + 2 * MINUTE_NS]
    for bar in bars:
        trades = [e for e in events if e["T"] == "t" and bar["t"] <= e["t"] < bar["t"] + MINUTE_NS]
        prices = [t["p"] for t in trades]
        volume = sum(t["s"] for t in trades)
        assert (bar["o"], bar["h"], bar["l"], bar["c"]) == (prices[0], max(prices), min(prices), prices[-1])
        assert bar["v"] == volume and bar["n"] == len(trades)
        assert isinstance(bar["v"], int) and isinstance(bar["n"], int) and isinstance(bar["vw"], float)
        assert bar["vw"] == pytest.approx(sum(t["p"] * t["s"] for t in trades) / volume, abs=1e-6)
    # Each bar is emitted after its minute's last trade and before the next minute's first trade.
    for bar in bars[:2]:
        position = events.index(bar)
        assert all(e["t"] >= bar["t"] + MINUTE_NS for e in events[position + 1 :] if e["T"] == "t")
    assert model.close_bars(minute0 + 10 * MINUTE_NS) == []  # each bar only once
