"""Unit tests of recordings (reader/writer), burst plans and fault scripts of the local feed."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import msgpack
import orjson
import pytest

from alpaca_feed.bursts import BurstPlan
from alpaca_feed.fault_script import parse_fault_script
from alpaca_feed.hours import MarketHours
from alpaca_feed.recording import RecordingFormat, RecordingReader, RecordingWriter
from schemas.timestamps import NS_PER_SECOND

T_NS = 1_700_000_000_123_456_789
QUOTE = {"T": "q", "S": "AAPL", "bx": "V", "bp": 1.5, "bs": 1, "ax": "Q", "ap": 1.51, "as": 2, "c": ["R"], "z": "C"}


@pytest.mark.parametrize("suffix", [".jsonl", ".msgpack"])
def test_writer_and_reader_round_trip_exact_nanoseconds(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"session{suffix}"
    messages = [{**QUOTE, "t": T_NS + i} for i in range(3)]
    messages.append({"T": "t", "S": "MSFT", "i": 9, "x": "V", "p": 2.0, "s": 100, "c": ["@"], "z": "C",
                     "t": msgpack.Timestamp.from_unix_nano(T_NS + 10)})  # fmt: skip
    writer = RecordingWriter(path)
    writer.write(messages)
    writer.close()
    assert writer.format is RecordingFormat.for_path(path) and writer.written == 4
    back = list(RecordingReader(path))
    assert [m["t"] for m in back] == [T_NS, T_NS + 1, T_NS + 2, T_NS + 10]
    assert back[0] == {**QUOTE, "t": T_NS} and next(iter(back[0])) == "T"
    raw = path.read_bytes()
    if suffix == ".jsonl":
        assert orjson.loads(raw.splitlines()[0])["t"] == "2023-11-14T22:13:20.123456789Z"  # as Alpaca's JSON
    else:
        first = next(iter(msgpack.Unpacker(io.BytesIO(raw), raw=False)))
        assert first["t"] == msgpack.Timestamp.from_unix_nano(T_NS)  # the ext -1 type, as alpaca-py reads it


def test_reader_accepts_frames_and_skips_what_is_not_data_with_a_log_line(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="alpaca_feed.recording")
    path = tmp_path / "mixed.jsonl"
    lines = [
        orjson.dumps({**QUOTE, "t": "2023-11-14T22:13:20.5Z"}),
        orjson.dumps([{**QUOTE, "t": "2023-11-14T22:13:21Z"}, {**QUOTE, "S": "MSFT", "t": "2023-11-14T22:13:22Z"}]),
        orjson.dumps({"T": "subscription", "trades": []}),  # control: skipped silently
        b"{not json",
        orjson.dumps({"T": "q", "bp": 1.0, "t": "2023-11-14T22:13:23Z"}),  # no S
        orjson.dumps({**QUOTE, "t": "yesterday"}),
        b"",
        orjson.dumps({"T": "zz", "S": "AAPL", "t": "2023-11-14T22:13:23Z"}),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    reader = RecordingReader(path)
    got = list(reader)
    assert [(m["S"], m["t"]) for m in got] == [
        ("AAPL", 1_700_000_000_500_000_000),
        ("AAPL", 1_700_000_001_000_000_000),
        ("MSFT", 1_700_000_002_000_000_000),
    ]
    assert reader.skipped == 4
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 4


def test_msgpack_stream_of_frames_is_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "frames.msgpack"
    frame = [{**QUOTE, "t": msgpack.Timestamp.from_unix_nano(T_NS + i)} for i in range(3)]
    path.write_bytes(msgpack.packb(frame) + msgpack.packb(frame[0]))
    assert [m["t"] for m in RecordingReader(path)] == [T_NS, T_NS + 1, T_NS + 2, T_NS]
    assert [len(batch) for batch in RecordingReader(path).batches(3)] == [3, 1]


@pytest.mark.parametrize(
    ("spec", "plan"),
    [
        ("10x1", BurstPlan(10.0, 1.0)),
        ("10x1@open", BurstPlan(10.0, 1.0)),
        ("2.5x3@30", BurstPlan(2.5, 3.0, "at", 30.0)),
        ("4x2@every60", BurstPlan(4.0, 2.0, "every", 60.0)),
    ],
)
def test_burst_specs_parse(spec: str, plan: BurstPlan) -> None:
    assert BurstPlan.parse(spec) == plan


@pytest.mark.parametrize("spec", ["10", "x1", "0x1", "10x0", "10x1@never", "2x5@every3", "10x1@-3"])
def test_bad_burst_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad burst"):
        BurstPlan.parse(spec)


def test_burst_factor_over_time() -> None:
    hours = MarketHours("always")
    start = 1_000 * NS_PER_SECOND
    at_open = BurstPlan.parse("10x1@open")
    assert at_open.factor_at(0.5, start + NS_PER_SECOND // 2, start, hours) == 10.0
    assert at_open.factor_at(1.5, start + 3 * NS_PER_SECOND // 2, start, hours) == 1.0
    later = BurstPlan.parse("3x2@5")
    assert [later.factor_at(s, 0, start, hours) for s in (4.9, 5.0, 6.9, 7.0)] == [1.0, 3.0, 3.0, 1.0]
    periodic = BurstPlan.parse("2x1@every10")
    assert [periodic.factor_at(s, 0, start, hours) for s in (0.5, 10.5, 11.5, 20.2)] == [1.0, 2.0, 1.0, 2.0]
    us = MarketHours("us")
    opening = 1_720_445_400 * NS_PER_SECOND  # 2024-07-08 09:30 EDT
    assert at_open.factor_at(9999, opening + NS_PER_SECOND // 2, start, us) == 10.0
    assert at_open.factor_at(9999, opening - 1, start, us) == 1.0


def test_fault_script_keeps_valid_lines_in_time_order(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="alpaca_feed.fault_script")
    text = "\n".join([
        '{"at_s": 5.0, "fault": "drop", "close_frame": false}',
        "# a comment",
        '{"at_s": 1, "fault": "mute", "seconds": 2}',
        '{"at_s": 2, "fault": "explode"}',
        '{"fault": "drop"}',
        '{"at_s": -1, "fault": "drop"}',
        "[1, 2]",
        "nonsense",
        '{"at_s": 1, "fault": "reject_auth", "code": 402}',
    ])  # fmt: skip
    steps = parse_fault_script(text)
    assert [(s.at_s, s.fault, s.arguments) for s in steps] == [
        (1.0, "mute", {"seconds": 2}),
        (1.0, "reject_auth", {"code": 402}),
        (5.0, "drop", {"close_frame": False}),
    ]
    assert len(caplog.records) == 5
