"""Recorded Alpaca sessions on disk: JSON Lines or a msgpack stream of Alpaca data messages.

A JSON Lines file holds one Alpaca message per line (``{"T":"q","S":"AAPL",…,"t":"…Z"}``, ``t`` as
RFC 3339 with up to nine fractional digits); a line may also hold an array of messages (a frame as
Alpaca sent it). A msgpack file is a stream of such maps (or arrays of them) with ``t`` as the
msgpack Timestamp extension, exactly as alpaca-py's raw mode hands them over. The format is told by
the first byte. In memory ``t`` is integer nanoseconds, so nothing is lost either way.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import msgpack
import orjson

from alpaca_feed.protocol import timestamp_to_ns
from alpaca_feed.subscriptions import channel_for
from schemas.timestamps import format_ns_trimmed, parse_ns
from tickwire.errors import TickwireError

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20


class RecordingFormat(enum.Enum):
    """How a recording is encoded."""

    JSONL = "jsonl"
    MSGPACK = "msgpack"

    @classmethod
    def for_path(cls, path: Path) -> RecordingFormat:
        """msgpack for ``.msgpack``/``.mpk``/``.mp`` files, JSON Lines otherwise."""
        return cls.MSGPACK if path.suffix.lower() in (".msgpack", ".mpk", ".mp") else cls.JSONL


class RecordingError(TickwireError, ValueError):
    """A recording that cannot be read at all."""


def _ns_of(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_ns(value)
        except ValueError:
            return value
    return timestamp_to_ns(value)


def _messages(item: Any) -> Iterator[Any]:
    if isinstance(item, list):
        yield from item
    else:
        yield item


class RecordingReader:
    """Yields the data messages of a recording in file order, ``t`` as integer ns.

    Lines or objects that are not Alpaca data messages (control messages, unknown ``T``, no ``S``,
    undecodable lines) are skipped with one log line each, up to a few, and counted in ``skipped``.
    """

    MAX_LOGGED = 5

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.skipped = 0

    def batches(self, size: int = 5_000) -> Generator[list[dict[str, Any]], None, None]:
        """The messages in lists of up to ``size`` (blocking I/O: run it in a thread from async code)."""
        batch: list[dict[str, Any]] = []
        for message in self:
            batch.append(message)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as file:
            first = file.read(1)
            file.seek(0)
            if not first:
                return
            items = self._json_items(file) if first in b"{[ \t\r\n" else self._msgpack_items(file)
            for item in items:
                for message in _messages(item):
                    accepted = self._accept(message)
                    if accepted is not None:
                        yield accepted

    def _json_items(self, file: IO[bytes]) -> Iterator[Any]:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self._skip(f"line {number} is not JSON ({exc})")

    def _msgpack_items(self, file: IO[bytes]) -> Iterator[Any]:
        unpacker = msgpack.Unpacker(raw=False)
        while chunk := file.read(_READ_CHUNK):
            unpacker.feed(chunk)
            try:
                yield from unpacker
            except (ValueError, msgpack.UnpackException) as exc:
                raise RecordingError(f"{self.path}: not a msgpack stream of Alpaca messages ({exc})") from exc

    def _accept(self, message: Any) -> dict[str, Any] | None:
        if not isinstance(message, dict):
            self._skip(f"not a message map: {message!r:.80}")
            return None
        if channel_for(message.get("T")) is None or not isinstance(message.get("S"), str):
            if message.get("T") not in ("success", "subscription", "error"):
                self._skip(f"not an Alpaca data message: {message!r:.120}")
            return None
        t = _ns_of(message.get("t"))
        if type(t) is not int:
            self._skip(f"message without a valid time: {message!r:.120}")
            return None
        out = {"T": message["T"], **message}  # T first, as on the wire
        out["t"] = t
        return out

    def _skip(self, why: str) -> None:
        self.skipped += 1
        if self.skipped <= self.MAX_LOGGED:
            log.warning("recording %s: skipped %s", self.path, why)
        elif self.skipped == self.MAX_LOGGED + 1:
            log.warning("recording %s: more skipped lines are not logged", self.path)


class RecordingWriter:
    """Appends Alpaca data messages to a recording (blocking I/O: call it from a thread).

    Messages are written exactly as received: in JSON Lines ``t`` becomes Alpaca's RFC 3339 text with
    trailing zeros trimmed, in msgpack it stays a Timestamp; every other field is untouched.
    """

    def __init__(self, path: Path | str, fmt: RecordingFormat | None = None) -> None:
        self.path = Path(path)
        self.format = fmt or RecordingFormat.for_path(self.path)
        self.written = 0
        self._file: IO[bytes] = self.path.open("wb")
        self._packer = msgpack.Packer()

    def write(self, messages: Iterable[Mapping[str, Any]]) -> None:
        """Append ``messages`` in order."""
        parts = []
        for message in messages:
            t = timestamp_to_ns(message.get("t"))
            if self.format is RecordingFormat.MSGPACK:
                if type(t) is int:
                    message = {**message, "t": msgpack.Timestamp.from_unix_nano(t)}
                parts.append(self._packer.pack(message))
            else:
                if type(t) is int:
                    message = {**message, "t": format_ns_trimmed(t)}
                parts.append(orjson.dumps(message) + b"\n")
        self._file.write(b"".join(parts))
        self.written += len(parts)

    def flush(self) -> None:
        """Push written data to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()
