"""Wire format of Alpaca's v2 stock stream: frame encoding, client-message decoding, control messages.

Server frames are arrays of maps with ``T`` as the first key. A client that upgraded with
``Content-Type: application/msgpack`` (alpaca-py always does) gets msgpack binary frames whose ``t`` is
a msgpack Timestamp (ext type -1); every other client gets JSON text frames whose ``t`` is an RFC 3339
string with trailing fractional zeros trimmed. Internally ``t`` is carried as integer nanoseconds.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgpack
import orjson

from schemas.timestamps import NS_PER_SECOND, datetime_to_ns
from tickwire.errors import TickwireError

MSGPACK_CONTENT_TYPE = "application/msgpack"

# Frames above 1 MiB make alpaca-py close with 1009, so batches are cut far below that.
MAX_FRAME_BYTES = 256 * 1024
# With permessage-deflate, aiohttp compresses frames up to 16 KiB inline and bigger ones in a thread
# pool, one loop round trip each; under load that round trip throttles a session to a few frames per
# second, so compressed sessions get frames small enough to compress inline.
COMPRESSED_FRAME_BYTES = 16 * 1024

# The exact texts matter: alpaca-py turns them into exception messages and matches on some of them.
ERROR_MESSAGES: dict[int, str] = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    500: "internal error",
}


# Auth refusals after which Alpaca closes the socket at once. After any other (406) the socket stays
# open, unauthenticated, until the auth deadline closes it.
CLOSING_AUTH_REFUSALS = frozenset({402, 404, 407, 409, 500})


def close_code_for(error_code: int) -> int:
    """The WebSocket close code that follows an error the server ends a session with."""
    return 1011 if error_code == 500 else 1008  # internal error vs policy violation


class Encoding(enum.Enum):
    """How a session's server frames are encoded, chosen from the upgrade request's Content-Type."""

    MSGPACK = "msgpack"
    JSON = "json"

    @classmethod
    def from_content_type(cls, content_type: str | None) -> Encoding:
        """msgpack only when the client asked for it; JSON otherwise (Alpaca's default)."""
        if content_type and content_type.split(";")[0].strip().lower() == MSGPACK_CONTENT_TYPE:
            return cls.MSGPACK
        return cls.JSON


class ProtocolError(TickwireError):
    """A client request the server answers with ``[{"T":"error","code":…,"msg":…}]``."""

    def __init__(self, code: int) -> None:
        super().__init__(ERROR_MESSAGES[code])
        self.code = code


# --- control messages -------------------------------------------------------------------------


def connected_message() -> dict[str, Any]:
    """The greeting sent right after the upgrade."""
    return {"T": "success", "msg": "connected"}


def authenticated_message() -> dict[str, Any]:
    """The reply to a successful auth."""
    return {"T": "success", "msg": "authenticated"}


def error_message(code: int) -> dict[str, Any]:
    """An error control message with Alpaca's text for ``code``."""
    return {"T": "error", "code": code, "msg": ERROR_MESSAGES[code]}


# --- timestamps -------------------------------------------------------------------------------


def timestamp_to_ns(value: Any) -> Any:
    """Normalise a ``t`` value to integer ns when it is a time (int, datetime, msgpack.Timestamp).

    Anything else is returned unchanged so tests can inject deliberately malformed values.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix_nano()
    if isinstance(value, datetime):
        return datetime_to_ns(value)
    return value


def msgpack_timestamp(ns: int) -> bytes:
    """The msgpack Timestamp extension (type -1) for ``ns``, in the shortest form, as msgpack packs it."""
    seconds, nanos = divmod(ns, NS_PER_SECOND)
    if seconds >> 34 == 0:
        if nanos == 0 and seconds >> 32 == 0:
            return b"\xd6\xff" + seconds.to_bytes(4, "big")
        return b"\xd7\xff" + ((nanos << 34) | seconds).to_bytes(8, "big")
    return b"\xc7\x0c\xff" + nanos.to_bytes(4, "big") + seconds.to_bytes(8, "big", signed=True)


_second_text: list[Any] = [None, ""]  # the last whole second formatted, and its text


def rfc3339_trimmed(ns: int) -> str:
    """Like ``format_ns_trimmed`` (Alpaca's JSON time), with the whole-second part cached (hot path)."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    if _second_text[0] != seconds:
        _second_text[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_text[0] = seconds
    if not fraction:
        return f"{_second_text[1]}Z"
    return f"{_second_text[1]}.{f'{fraction:09d}'.rstrip('0')}Z"


# --- encoding ---------------------------------------------------------------------------------

_PACKER = msgpack.Packer()
# How a map whose last key is "t" with a uint64 value ends when packed: key "t", then the uint64 marker.
_PACKED_T_TAIL = b"\xa1t\xcf"


def encode_message(message: Mapping[str, Any], encoding: Encoding) -> bytes:
    """Encode one map (not yet wrapped in an array); an integer ``t`` becomes the wire timestamp."""
    t = message.get("t")
    if type(t) is not int:
        return _PACKER.pack(message) if encoding is Encoding.MSGPACK else orjson.dumps(message)
    if encoding is Encoding.MSGPACK:
        # Fast path (the model puts t last): pack as is, then swap the trailing uint64 for the
        # Timestamp extension, which avoids copying the map and building a Timestamp object.
        packed = _PACKER.pack(message)
        if t >> 32 and packed[-11:-8] == _PACKED_T_TAIL:
            return packed[:-9] + msgpack_timestamp(t)
        return _PACKER.pack({**message, "t": msgpack.Timestamp.from_unix_nano(t)})
    dumped = orjson.dumps(message)
    tail = b'"t":%d}' % t
    if dumped.endswith(tail):
        return b'%s"t":"%s"}' % (dumped[: -len(tail)], rfc3339_trimmed(t).encode())
    return orjson.dumps({**message, "t": rfc3339_trimmed(t)})


def assemble_frames(encoded: Sequence[bytes], encoding: Encoding, max_bytes: int = MAX_FRAME_BYTES) -> list[bytes]:
    """Wrap pre-encoded maps into as few array frames as fit under ``max_bytes`` each, in order."""
    frames: list[bytes] = []
    start = size = 0
    for index, part in enumerate(encoded):
        if index > start and size + len(part) > max_bytes:
            frames.append(_wrap(encoded[start:index], encoding))
            start, size = index, 0
        size += len(part) + 1
    if start < len(encoded):
        frames.append(_wrap(encoded[start:], encoding))
    return frames


def _wrap(parts: Sequence[bytes], encoding: Encoding) -> bytes:
    if encoding is Encoding.MSGPACK:
        return msgpack.Packer().pack_array_header(len(parts)) + b"".join(parts)
    return b"[" + b",".join(parts) + b"]"


def encode_frame(messages: Iterable[Mapping[str, Any]], encoding: Encoding) -> bytes:
    """Encode messages as a single array frame (used for control messages, which travel alone)."""
    return _wrap([encode_message(message, encoding) for message in messages], encoding)


def with_type_first(message: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of a data message with ``T`` as its first key (the Go SDK rejects anything else)."""
    if "T" not in message:
        raise ValueError(f"message has no 'T' key: {message!r}")
    out: dict[str, Any] = {"T": message["T"]}
    out.update((key, value) for key, value in message.items() if key != "T")
    return out


# --- decoding ---------------------------------------------------------------------------------


def decode_client_message(data: bytes | str) -> Any:
    """Decode one client message by opcode: binary frames are msgpack, text frames are JSON.

    Raises ProtocolError(400) when the payload cannot be decoded.
    """
    try:
        if isinstance(data, str):
            return orjson.loads(data)
        return msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(400) from exc


def decode_server_frame(data: bytes | str) -> list[dict[str, Any]]:
    """Decode a server frame the way a client would (used by tests and debugging tools)."""
    if isinstance(data, str):
        return orjson.loads(data)
    return msgpack.unpackb(data, raw=False)
