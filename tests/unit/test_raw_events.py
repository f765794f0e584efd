"""RawEventEncoder: Alpaca fields kept as received, nanoseconds kept, routed by message type."""

from datetime import UTC, datetime

import msgpack
import orjson

from producers.raw_events import encode_raw_event
from schemas.events import RawBar, RawQuote, RawTrade
from schemas.topics import BARS_RAW, QUOTES_RAW, TRADES_RAW

STAMP = msgpack.Timestamp.from_unix_nano(1_700_000_000_123_456_789)


def test_encode_raw_event_given_quote_keeps_fields_and_nanoseconds() -> None:
    message = {"T": "q", "S": "AAPL", "bx": "V", "bp": 150.25, "bs": 3, "ax": "Q", "ap": 150.27, "as": 5,
               "c": ["R"], "z": "C", "t": STAMP}
    record = encode_raw_event(message, received_ns=1_700_000_000_200_000_000)
    assert record is not None
    assert (record.topic, record.key) == (QUOTES_RAW.name, b"AAPL")
    assert orjson.loads(record.value) == {**message, "t": "2023-11-14T22:13:20.123456789Z",
                                          "received_at": "2023-11-14T22:13:20.200000000Z"}
    assert RawQuote.model_validate_json(record.value).bid_price == 150.25


def test_encode_raw_event_given_trade_and_bar_routes_them() -> None:
    trade = encode_raw_event({"T": "t", "S": "MSFT", "i": 1, "x": "V", "p": 410.1, "s": 100, "c": ["@"],
                              "z": "C", "t": STAMP}, 0)
    bar = encode_raw_event({"T": "b", "S": "MSFT", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 10, "n": 2,
                            "vw": 1.2, "t": datetime(2023, 11, 14, 22, 13, tzinfo=UTC)}, 0)
    assert trade is not None and trade.topic == TRADES_RAW.name
    assert bar is not None and bar.topic == BARS_RAW.name
    assert RawTrade.model_validate_json(trade.value).size == 100
    assert RawBar.model_validate_json(bar.value).timestamp == "2023-11-14T22:13:00.000000000Z"


def test_encode_raw_event_given_status_message_skips_it() -> None:
    assert encode_raw_event({"T": "s", "S": "AAPL", "t": STAMP}, 0) is None
