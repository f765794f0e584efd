"""StreamReader: follows several of tickwire's capped Redis streams in one order, exactly once, resumably.

The price and P&L projections append every message they publish to ``price.stream.{SYMBOL}`` and
``pnl.stream.{account}`` in the same Lua step (``schemas.topics``), capped with ``MAXLEN ~``. A reader keeps,
per stream, the id of the last entry it fetched and reads after it, so a lost connection costs nothing: the
next read (after a reconnect) goes on from there. What the cap trimmed before the reader got it is not
silence: the reader yields one :class:`StreamGap` for that stream, then goes on from its oldest entry.

**One order, one position.** Entries are handed out in the order of (entry id, stream name) over all the
streams, so the last one handed out, a :class:`Position`, says where the reader is in every stream at once:
the SSE endpoint sends it as each event's id and resumes from the ``Last-Event-ID`` a browser sends back.
For that, an entry is handed out only once nothing can still appear before it: entry ids are Redis's clock
(milliseconds), so each read also asks Redis the time, and entries of the current millisecond wait for the
next read (a millisecond or two) because another stream may still get an entry with the same id.

Each read is one Lua script (atomic: the time, the new entries of every stream, the gap checks and, for a
reader of every symbol, the new members of the set of symbols with a price stream); waiting for news is a
blocking XREAD between reads. Stream names are Redis keys (with a replay's namespace, if any).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis

from schemas.topics import STREAM_DATA_FIELD
from tickwire.tasks import raise_if_cancelled

log = structlog.get_logger(__name__)

StreamId = tuple[int, int]  # (milliseconds, sequence): a Redis stream entry id
ZERO: StreamId = (0, 0)  # before every entry: a stream the reader has seen nothing of
MAX_SEQ = 2**64 - 1
MAX_POSITION_MS = 2**63  # far beyond any clock; an id at 2**64 - 1 could not be read after
READ_COUNT = 500  # entries per stream and read: bounds a read's reply while a reader catches up
HOLD_BACK_WAIT_S = 0.002  # entries of the current millisecond are handed out at the next read, this soon

# ARGV[1] entries per stream; ARGV[2] the set of symbols with a stream ('' = none followed), ARGV[3] the prefix
# of their streams, ARGV[4] how many of its members the reader knows; then stream, cursor pairs (read after).
# Returns the time (ms), the set's members new to the reader (false: none) and, per stream with new entries,
# {stream, gap, entries}. New members are read in the same step from the start: none of their entries can
# predate the reader's previous read, which did not find them in the set (SADD and XADD are one step).
# Gap: nothing at or before the cursor is left and an entry after it was trimmed. Redis 7 says so exactly
# (max-deleted-entry-id); Redis 6.2 cannot, so there a stream whose every entry is newer than a cursor that
# was not 0-0 counts as a gap (also when nothing was trimmed but the reader's cursor never was in it).
_READ_LUA = """
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am < bm or (am == bm and tonumber(as) < tonumber(bs))
end
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), false}
local count = tonumber(ARGV[1])
local streams = {}
for i = 5, #ARGV, 2 do streams[#streams + 1] = {ARGV[i], ARGV[i + 1]} end
if ARGV[2] ~= '' and redis.call('SCARD', ARGV[2]) ~= tonumber(ARGV[4]) then
  local known = {}
  for _, s in ipairs(streams) do known[s[1]] = true end
  local added = {}
  for _, member in ipairs(redis.call('SMEMBERS', ARGV[2])) do
    local stream = ARGV[3] .. member
    if not known[stream] then
      added[#added + 1] = member
      streams[#streams + 1] = {stream, '0-0'}
    end
  end
  out[2] = added
end
for _, s in ipairs(streams) do
  local stream, cursor = s[1], s[2]
  local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', count)
  if #entries > 0 then
    local gap = false
    if redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1][1] == entries[1][1] then
      local info = redis.call('XINFO', 'STREAM', stream)
      local deleted = nil
      for j = 1, #info, 2 do
        if info[j] == 'max-deleted-entry-id' then deleted = info[j + 1] end
      end
      if deleted then gap = older(cursor, deleted) else gap = cursor ~= '0-0' end
    end
    out[#out + 1] = {stream, gap, entries}
  end
end
return out
"""


def parse_id(raw: str | bytes) -> StreamId:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; ValueError when it is not a stream id."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, sep, seq = text.partition("-")
    digits = sep and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()
    if not digits or max(int(ms), int(seq)) > MAX_SEQ:
        raise ValueError(f"not a stream id: {text!r}")
    return int(ms), int(seq)


def format_id(stream_id: StreamId) -> str:
    """Inverse of :func:`parse_id`."""
    return f"{stream_id[0]}-{stream_id[1]}"


def before(stream_id: StreamId) -> StreamId:
    """The greatest id below ``stream_id`` (reading after it includes ``stream_id``)."""
    ms, seq = stream_id
    if seq > 0:
        return ms, seq - 1
    return (ms - 1, MAX_SEQ) if ms > 0 else ZERO


@dataclass(frozen=True, order=True)
class Position:
    """A point in the merged order of streams: an entry id, then the stream's name (two streams can hold the
    same id: one projection step writes many streams in one millisecond). Everything up to it was handed out."""

    id: StreamId
    stream: str

    def token(self) -> str:
        """``{ms}-{seq}@{stream}``: the SSE event id."""
        return f"{format_id(self.id)}@{self.stream}"

    @classmethod
    def parse(cls, token: str) -> Position:
        """Inverse of :meth:`token`; ValueError when ``token`` is not one."""
        id_text, sep, stream = token.strip().partition("@")
        if not sep or not stream:
            raise ValueError(f"not a stream position: {token!r}")
        position = cls(parse_id(id_text), stream)
        if position.id[0] >= MAX_POSITION_MS:  # Redis could not read after it: no clock gets there
            raise ValueError(f"not a stream position: {token!r}")
        return position

    def cursor(self, stream: str) -> StreamId:
        """Where ``stream`` is read after, resuming from here: its entries up to this position were handed out."""
        return self.id if stream <= self.stream else before(self.id)


@dataclass(frozen=True)
class StreamEntry:
    """One entry: its stream, id and ``data`` field (the JSON message the matching channel received)."""

    stream: str
    id: StreamId
    data: bytes

    @property
    def position(self) -> Position:
        """Its place in the merged order."""
        return Position(self.id, self.stream)


@dataclass(frozen=True)
class StreamGap:
    """Entries of ``stream`` after ``last_seen`` were trimmed (the cap) before the reader got them; it goes on
    from ``resumed_at``, the oldest entry left."""

    stream: str
    last_seen: StreamId
    resumed_at: StreamId


@dataclass(frozen=True)
class Discovery:
    """Follow every stream named in a set: ``registry`` holds names, ``prefix + name`` is each one's stream."""

    registry: str
    prefix: str


class StreamReader:
    """Reads ``cursors``' streams after their cursors (and, with ``discovery``, every stream its set names).

    ``known`` are the set's members the cursors already cover. :meth:`read` hands out entries and gaps in
    :class:`Position` order; Redis errors propagate, and the next :meth:`read` (on a new connection) goes on
    where the last one stopped: the reader keeps its cursors, not a connection.
    """

    def __init__(self, redis: Redis, cursors: Mapping[str, StreamId], discovery: Discovery | None = None,
                 known: Iterable[str] = (), count: int = READ_COUNT) -> None:
        self.redis = redis
        self.discovery = discovery
        self.count = count
        self.position: Position | None = None  # of the last entry handed out
        self._fetched: dict[str, StreamId] = dict(cursors)  # per stream, the last entry read from Redis
        self._known = set(known)
        self._pending: list[tuple[tuple[Position, int], StreamEntry | StreamGap]] = []  # read, not handed out
        self._backlog = False  # the last read stopped at ``count`` entries of a stream: read again at once
        self._script = redis.register_script(_READ_LUA)

    @property
    def streams(self) -> list[str]:
        """The streams followed so far."""
        return list(self._fetched)

    async def read(self, block_s: float) -> list[StreamEntry | StreamGap]:
        """What is new, in order; waits up to ``block_s`` for something (it may still return nothing)."""
        ready = await self._fetch()
        raise_if_cancelled()  # each call goes through redis-py's wait_for, which can lose a cancel on 3.11
        if ready or self._backlog:
            return ready
        await self._wait(HOLD_BACK_WAIT_S if self._pending else block_s)
        raise_if_cancelled()
        return await self._fetch()

    async def _wait(self, block_s: float) -> None:
        """Until a followed stream has an entry after what was read, or ``block_s`` passed."""
        if not self._fetched:
            await asyncio.sleep(block_s)  # nothing to block on yet: the next read looks for new streams
            return
        await self.redis.xread({s: format_id(c) for s, c in self._fetched.items()}, count=1,
                               block=max(1, int(block_s * 1000)))

    async def _fetch(self) -> list[StreamEntry | StreamGap]:
        discovery = self.discovery
        args: list[Any] = [self.count, discovery.registry if discovery else "", discovery.prefix if discovery else "",
                           len(self._known)]
        for stream, cursor in self._fetched.items():
            args += [stream, format_id(cursor)]
        now_ms, added, *results = await self._script(args=args)
        if added and discovery is not None:
            for member in added:
                name = _text(member)
                self._known.add(name)
                self._fetched.setdefault(discovery.prefix + name, ZERO)
        bound: Position | None = None  # beyond a stream cut at ``count`` entries, later reads may add before it
        for raw_stream, gap, entries in results:
            stream = _text(raw_stream)
            parsed = [StreamEntry(stream, parse_id(entry_id), _data(fields)) for entry_id, fields in entries]
            if gap:
                log.warning("stream trimmed past a reader's position: updates were missed", stream=stream,
                            last_seen=format_id(self._fetched[stream]), resumed_at=format_id(parsed[0].id))
                self._pending.append(((parsed[0].position, 0), StreamGap(stream, self._fetched[stream],
                                                                         parsed[0].id)))
            self._pending += [((entry.position, 1), entry) for entry in parsed]
            self._fetched[stream] = parsed[-1].id
            if len(parsed) >= self.count and (bound is None or parsed[-1].position < bound):
                bound = parsed[-1].position
        self._backlog = bound is not None
        self._pending.sort(key=lambda item: item[0])
        cut = 0
        for (position, _), _item in self._pending:
            if position.id[0] >= now_ms or (bound is not None and position > bound):
                break
            cut += 1
        ready, self._pending = [item for _, item in self._pending[:cut]], self._pending[cut:]
        for item in reversed(ready):
            if isinstance(item, StreamEntry):
                self.position = item.position
                break
        return ready


async def last_ids(redis: Redis, streams: Iterable[str]) -> dict[str, StreamId]:
    """Each stream's newest entry id now, read in one transaction (:data:`ZERO` for a stream with none)."""
    names = list(streams)
    pipe = redis.pipeline(transaction=True)
    for stream in names:
        pipe.xrevrange(stream, count=1)
    newest = await pipe.execute()
    return {stream: parse_id(entries[0][0]) if entries else ZERO for stream, entries in zip(names, newest, strict=True)}


def _data(fields: list[bytes | str]) -> bytes:
    values = dict(zip(map(_text, fields[::2]), fields[1::2], strict=True))
    value = values.get(STREAM_DATA_FIELD, b"")
    return value.encode() if isinstance(value, str) else value


def _text(value: bytes | str) -> str:
    # Replies are bytes, or str from a client made with decode_responses=True.
    return value.decode() if isinstance(value, bytes) else value
