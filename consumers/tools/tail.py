"""``tickwire tail``: follow a topic live, or read it from an offset or a time, as JSON lines or a table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.table import Table

from consumers.tools.bounds import Bound, TimeField
from consumers.tools.topic_range import RangeResolver
from schemas.timestamps import format_ns
from schemas.topics import BARS_RAW, DAILY_BARS_RAW, PRICES, QUOTES_RAW, TRADES_RAW

TAIL_FETCH_WAIT_S = 0.1  # the fetch wait tail's consumer is built with (consumers/tools/cli.py)

OutputFormat = Literal["json", "table"]


@dataclass(frozen=True)
class TailRequest:
    """What to print: ``start`` None means only records that arrive from now on."""

    topic: str
    start: Bound | None = None
    symbols: frozenset[str] = frozenset()
    output: OutputFormat = "table"
    follow: bool = True  # False: stop at the end the topic had when tail started
    limit: int | None = None
    time_field: TimeField = "record"


@dataclass(frozen=True)
class TailRecord:
    """A consumed record, decoded for printing (``value`` is the JSON, or the text when it is not JSON)."""

    topic: str
    partition: int
    offset: int
    timestamp: str | None
    key: str | None
    value: Any

    @classmethod
    def of(cls, record: ConsumerRecord) -> TailRecord:
        """Decode a consumer record; a value that is not JSON stays text."""
        try:
            value: Any = orjson.loads(record.value) if record.value is not None else None
        except orjson.JSONDecodeError:
            value = record.value.decode("utf-8", "replace")
        stamp = format_ns(record.timestamp * 1_000_000) if record.timestamp and record.timestamp > 0 else None
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return cls(record.topic, record.partition, record.offset, stamp, key, value)

    @property
    def symbol(self) -> str | None:
        """The symbol: the value's ``S`` or ``symbol``, else the key (``account:SYMBOL`` keys too)."""
        if isinstance(self.value, dict):
            for name in ("S", "symbol"):
                if isinstance(self.value.get(name), str):
                    return self.value[name]
        return self.key.rpartition(":")[2] if self.key else None

    def to_json(self) -> bytes:
        """One JSON line."""
        return orjson.dumps({"topic": self.topic, "partition": self.partition, "offset": self.offset,
                             "timestamp": self.timestamp, "key": self.key, "value": self.value})


Column = tuple[str, int, Callable[[Any], Any]]


def _get(*names: str) -> Callable[[Any], Any]:
    def pick(value: Any) -> Any:
        if not isinstance(value, dict):
            return None
        for name in names:
            if value.get(name) is not None:
                return value[name]
        return None
    return pick


_QUOTE_COLUMNS: list[Column] = [("bid", 10, _get("bp")), ("bid size", 8, _get("bs")), ("ask", 10, _get("ap")),
                                ("ask size", 8, _get("as")), ("exchange time", 30, _get("t"))]
_TRADE_COLUMNS: list[Column] = [("price", 10, _get("p")), ("size", 8, _get("s")), ("exch", 4, _get("x")),
                                ("exchange time", 30, _get("t"))]
_BAR_COLUMNS: list[Column] = [("open", 9, _get("o")), ("high", 9, _get("h")), ("low", 9, _get("l")),
                              ("close", 9, _get("c")), ("volume", 9, _get("v")), ("t", 30, _get("t"))]
_PRICE_COLUMNS: list[Column] = [("mid", 10, _get("mid")), ("bid", 10, _get("bid")), ("ask", 10, _get("ask")),
                                ("bps", 8, _get("spread_bps")), ("exchange time", 30, _get("timestamp"))]
_REJECTED_COLUMNS: list[Column] = [("reason", 14, _get("reason")), ("detail", 60, _get("detail"))]
GENERIC_COLUMNS: list[Column] = [("value", 90, lambda v: orjson.dumps(v).decode() if not isinstance(v, str) else v)]

# The fields worth a column, by live topic name (a replay topic "{name}.replay.{run}" uses its base's).
COLUMNS_BY_TOPIC: dict[str, list[Column]] = {
    QUOTES_RAW.name: _QUOTE_COLUMNS,
    TRADES_RAW.name: _TRADE_COLUMNS,
    BARS_RAW.name: _BAR_COLUMNS,
    DAILY_BARS_RAW.name: _BAR_COLUMNS,
    PRICES.name: _PRICE_COLUMNS,
}


def columns_for(topic: str) -> list[Column]:
    """Columns for a topic: chosen fields for tickwire's main topics, the whole value otherwise."""
    base = topic.split(".replay.", 1)[0]
    if base.endswith(".rejected"):
        return _REJECTED_COLUMNS
    return COLUMNS_BY_TOPIC.get(base, GENERIC_COLUMNS)


class TableWriter:
    """Prints records as rows of a table with fixed column widths, so rows of later batches line up."""

    def __init__(self, topic: str, out: TextIO) -> None:
        self.console = Console(file=out, width=250, soft_wrap=False, highlight=False, emoji=False, markup=False)
        self.columns: list[Column] = [("record time", 30, lambda _v: None), ("p:offset", 10, lambda _v: None),
                                      ("symbol", 8, lambda _v: None), *columns_for(topic)]
        self._header = True

    def write(self, records: list[TailRecord]) -> None:
        """Print a batch of rows (the header with the first)."""
        if not records:
            return
        table = Table(box=None, show_header=self._header, pad_edge=False, header_style="bold")
        for header, width, _ in self.columns:
            table.add_column(header, width=width, no_wrap=True, overflow="ellipsis")
        for record in records:
            cells = [record.timestamp or "", f"{record.partition}:{record.offset}", record.symbol or ""]
            if isinstance(record.value, dict):
                cells += ["" if (v := pick(record.value)) is None else str(v) for _, _, pick in self.columns[3:]]
            else:  # not a JSON object (a malformed record, or a tombstone): show what it is
                text = "(tombstone)" if record.value is None else str(record.value)
                cells += [text] + [""] * (len(self.columns) - 4)
            table.add_row(*cells)
        self.console.print(table)
        self._header = False


async def tail(
    consumer: AIOKafkaConsumer, request: TailRequest, out: TextIO, stop: asyncio.Event,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Print records until ``stop``, the limit, or (without follow) the end; returns how many were printed."""
    resolver = RangeResolver(consumer, request.time_field)
    tps = await resolver.partitions(request.topic)
    if request.start is None:
        ends = await resolver.end_offsets(tps)
        starts, how = ends, "the end (new records only)"
    else:
        resolved = await resolver.resolve(request.topic, request.start, None)
        starts = {TopicPartition(request.topic, p.partition): p.start for p in resolved.partitions}
        ends = {TopicPartition(request.topic, p.partition): p.end for p in resolved.partitions}
        how = ", ".join(f"{p.partition}:{p.start} ({p.start_how})" for p in resolved.partitions)
        for note in resolved.notes:
            how += f"\n  {note}"
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, starts[tp])
    if ready is not None:
        ready(f"tailing {request.topic} from {how}")
    writer = TableWriter(request.topic, out) if request.output == "table" else None
    pending = {tp for tp in tps if starts[tp] < ends[tp]}
    printed = 0
    while not stop.is_set():
        if not request.follow and not pending:
            break
        batch = await consumer.getmany(timeout_ms=200, max_records=500)
        rows: list[TailRecord] = []
        for tp, records in batch.items():
            for record in records:
                if not request.follow and record.offset >= ends[tp]:
                    break
                row = TailRecord.of(record)
                if not request.symbols or row.symbol in request.symbols:
                    rows.append(row)
            if tp in pending and await consumer.position(tp) >= ends[tp]:  # offsets may skip (compaction)
                pending.discard(tp)
        rows.sort(key=lambda r: (r.timestamp or "", r.partition, r.offset))
        if request.limit is not None:
            rows = rows[: request.limit - printed]
        if writer is not None:
            writer.write(rows)
        else:
            for row in rows:
                out.write(row.to_json().decode() + "\n")
        out.flush()
        printed += len(rows)
        if request.limit is not None and printed >= request.limit:
            break
    return printed

