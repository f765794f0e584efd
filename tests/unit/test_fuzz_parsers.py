"""Property-based fuzzing of every parser and validator: any input gives a value or a stated rejection,
never an exception (hypothesis; each property runs FUZZ_EXAMPLES cases)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_feed.protocol import ProtocolError, decode_client_message
from domain.positions import ACCOUNT_PATTERN, validate_position
from domain.price_batch import price_batch
from domain.quotes import QuoteValidator, Rejection, ValidQuote
from domain.records import SourceRecord
from producers.raw_events import encode_raw_event
from schemas.events import Position, RejectReason
from schemas.symbols import SYMBOL_PATTERN, normalize_symbol
from schemas.timestamps import format_ns, parse_ns

FUZZ_EXAMPLES = 300
fuzz = settings(max_examples=FUZZ_EXAMPLES)

# Wire-like scalars: wrong types, huge and tiny numbers, NaN/inf, unicode, empty.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=8),
    st.sampled_from(["AAPL", "brk.b", "ÄPFEL", "A" * 40, "", "2026-11-21T20:00:00.123456789Z", "NaN", "1e999"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
QUOTE_FIELDS = ["T", "S", "t", "bp", "bs", "ap", "as", "bx", "ax", "c", "z", "received_at"]
sane = {"T": "q", "S": "AAPL", "t": "2026-11-21T20:00:00.000000001Z", "bp": 1.0, "bs": 1, "ap": 1.5, "as": 1,
        "received_at": "2026-11-21T20:00:00.000000002Z"}
quote_messages = st.builds(lambda over, drop: {**{k: v for k, v in sane.items() if k not in drop}, **over},
                           st.dictionaries(st.sampled_from(QUOTE_FIELDS), values, max_size=4),
                           st.sets(st.sampled_from(QUOTE_FIELDS), max_size=3))


@fuzz
@given(message=quote_messages)
def test_ingest_then_validator_given_any_quote_message_publishes_and_accepts_or_rejects_with_reason(
        message: dict[str, Any]) -> None:
    record = encode_raw_event(message, received_ns=1_763_755_200_000_000_002)
    if record is None:
        assert message.get("T") not in ("q", "t", "b")
        return
    assert isinstance(orjson.loads(record.value), dict)  # whatever came in, valid JSON goes out
    outcome = QuoteValidator(max_age_ns=10**30).validate(record.value)
    if isinstance(outcome, Rejection):
        assert outcome.reason in RejectReason and outcome.detail
    else:
        assert isinstance(outcome, ValidQuote)
        assert 0 < outcome.bid <= outcome.ask and outcome.bid_size >= 0 and outcome.ask_size >= 0
        assert SYMBOL_PATTERN.fullmatch(outcome.symbol)


@fuzz
@given(raw=st.one_of(st.binary(max_size=64), values.map(lambda v: orjson.dumps(v, default=str,
                                                                                option=orjson.OPT_NON_STR_KEYS)
                                                         if _fits(v) else b"x")))
def test_validator_given_any_bytes_rejects_with_reason_or_accepts(raw: bytes) -> None:
    outcome = QuoteValidator().validate(raw)
    assert isinstance(outcome, ValidQuote) or outcome.reason in RejectReason


@fuzz
@given(key=st.one_of(st.none(), st.binary(max_size=20), st.text(max_size=20).map(str.encode)),
       value=st.one_of(st.none(), st.binary(max_size=32), st.dictionaries(
           st.sampled_from(["account", "symbol", "qty", "avg_entry_price", "updated_at"]), values, max_size=5)
           .map(lambda d: orjson.dumps(d, default=str) if _fits(d) else b"{}")))
def test_position_validator_given_any_record_returns_position_or_rejection(key: bytes | None,
                                                                          value: bytes | None) -> None:
    outcome = validate_position(key, value)
    if isinstance(outcome, Rejection):
        assert outcome.reason in RejectReason and outcome.detail
        return
    assert isinstance(outcome, Position)
    assert ACCOUNT_PATTERN.fullmatch(outcome.account) and SYMBOL_PATTERN.fullmatch(outcome.symbol)
    assert outcome.qty.is_finite() and outcome.avg_entry_price >= 0


@fuzz
@given(text=st.one_of(st.text(max_size=40), values))
def test_parse_ns_given_anything_returns_int_or_value_error(text: Any) -> None:
    try:
        ns = parse_ns(text)
    except ValueError:
        return
    assert isinstance(ns, int)


@fuzz
@given(ns=st.integers(min_value=0, max_value=253_402_300_799_999_999_999))
def test_format_then_parse_ns_given_any_instant_round_trips(ns: int) -> None:
    assert parse_ns(format_ns(ns)) == ns


@fuzz
@given(raw=values)
def test_normalize_symbol_given_anything_is_canonical_or_value_error(raw: Any) -> None:
    try:
        symbol = normalize_symbol(raw)
    except ValueError:
        return
    assert SYMBOL_PATTERN.fullmatch(symbol) and normalize_symbol(symbol) == symbol


@fuzz
@given(data=st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_feed_decode_client_message_given_anything_decodes_or_protocol_error(data: bytes | str) -> None:
    try:
        decode_client_message(data)
    except ProtocolError as exc:
        assert exc.code == 400


@fuzz
@given(quotes=st.lists(st.tuples(st.sampled_from(["AAA", "BBB"]), st.integers(0, 20),
                                 st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
                                 st.decimals(min_value=Decimal(0), max_value=Decimal(5), places=2)), max_size=30),
       chunk=st.integers(1, 10))
def test_price_batch_given_any_quote_order_never_moves_a_price_back_in_time(
        quotes: list[tuple[str, int, Decimal, Decimal]], chunk: int) -> None:
    t0 = 1_763_755_200_000_000_000
    records = [SourceRecord(s.encode(), orjson.dumps({"S": s, "t": format_ns(t0 + dt), "bp": float(bid),
                                                      "ap": float(bid + spread), "bs": 1, "as": 1}),
                            "quotes.raw", 0, i)
               for i, (s, dt, bid, spread) in enumerate(quotes)]
    latest: dict[str, dict[str, Any]] = {}
    emitted: dict[str, list[str]] = {}
    for start in range(0, len(records), chunk):
        result = price_batch(records[start:start + chunk], latest, QuoteValidator(max_age_ns=10**30))
        for price in result.prices:
            emitted.setdefault(price.symbol, []).append(price.timestamp)
        assert len(result.prices) + len(result.rejected) == len(records[start:start + chunk])
    for symbol, stamps in emitted.items():
        assert stamps == sorted(stamps) and latest[symbol]["timestamp"] == stamps[-1]
        newest = max(format_ns(t0 + dt) for s, dt, _, _ in quotes if s == symbol)
        assert stamps[-1] == newest


def _fits(value: Any) -> bool:
    """orjson cannot encode ints beyond 64 bits: such test inputs are replaced."""
    try:
        orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
        return True
    except TypeError:
        return False


@pytest.mark.parametrize("message", [
    {"T": "q", "S": "AAPL", "bp": 2**70, "t": 1},  # JSON frames carry ints of any size
    {"T": "q", "S": "AAPL", "bp": [-(2**90)], "c": {"k": 2**64}},
    {"T": "t", "S": "AAPL", "p": float("nan"), "s": math.inf},
    {"T": "b", "S": "ÄPFEL", 1: b"\xff", "t": msgpack.Timestamp(1, 2)},
])
def test_encode_raw_event_given_unencodable_values_still_publishes_json_for_the_dlq(message: dict[Any, Any]) -> None:
    record = encode_raw_event(message, received_ns=1)
    assert record is not None and isinstance(orjson.loads(record.value), dict)
    outcome = QuoteValidator().validate(record.value)
    assert isinstance(outcome, Rejection) and outcome.reason in RejectReason


frame_messages = st.lists(st.one_of(values, st.builds(
    lambda over: {"T": "q", "S": "AAPL", **over},
    st.dictionaries(st.sampled_from(["T", "S", "t", "sc", "code", "msg", "trades"]), values, max_size=3))),
    max_size=6)


class QueueOnly:
    """The publisher's hand-over side only (room, put, refuse, counters): a bounded queue, no Kafka."""

    def __init__(self, capacity: int) -> None:
        from producers.kafka_publisher import IngestCounters

        self.counters = IngestCounters()
        self.capacity, self.frames, self.refused = capacity, [], 0

    def room(self) -> int:
        return self.capacity - sum(len(f) for f in self.frames)

    def put(self, messages: list[dict[str, Any]], received_ns: int) -> None:
        if messages:
            self.frames.append(messages)

    def refuse(self) -> None:
        self.refused += 1


@fuzz
@given(messages=frame_messages)
def test_ingest_router_given_any_decoded_frame_never_raises_and_bounds_its_queue(messages: list[Any]) -> None:
    from producers.gaps import GapTracker
    from producers.staleness import MarketHours, StalenessMonitor
    from producers.stock_source import STOCK_ROUTING
    from producers.stream_router import StreamRouter

    queue = QueueOnly(capacity=3)
    router = StreamRouter(queue, GapTracker(5.0), StalenessMonitor(60, 30, MarketHours("always")),  # type: ignore[arg-type]
                          {"AAPL"}, routing=STOCK_ROUTING)
    router.on_frame(messages, 1_763_755_200_000_000_000)
    assert queue.room() >= 0
    for batch in queue.frames:  # whatever was queued encodes to JSON the processor can judge
        for message in batch:
            record = encode_raw_event(message, 1)
            assert record is None or isinstance(orjson.loads(record.value), dict)
