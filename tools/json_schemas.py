"""Writes the published JSON Schemas into schemas/json/ from the pydantic models (``python tools/json_schemas.py``).

One schema (draft 2020-12) for the key and one for the value of every topic in ``schemas.topics.ALL_TOPICS``,
one for every JSON value tickwire writes to Redis, and ``index.json`` naming them all (``schemas/published.py``
reads it). Values are pydantic's serialization-mode schemas, since that mode describes what ``to_json`` writes;
every object's unknown fields are refused unless its model keeps them (the raw Alpaca events), so a field
renamed in Python fails validation of a real message against the committed schema. Keys are strings with the
symbol and account rules as patterns. The output is deterministic (sorted keys, two-space indent, trailing
newline): ``--check`` says whether the folder is current (exit 1 if not) and writes nothing; a unit test
(``tests/unit/test_json_schemas.py``) does the same.

Left out, on purpose: the processors' topics named after ``TICKWIRE_PROCESSOR_APP_ID`` (``{app_id}-marks``,
the latest-price changelog): their name depends on the deployment and they carry ``prices`` records (or, under
the ``last`` policy, trades) for the P&L stage's state, so they are free to change; and Redis counters, sets
and processor bookkeeping, which are not JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel

from domain.positions import ACCOUNT_PATTERN
from schemas import events, topics
from schemas.published import DIALECT, INDEX_FILE, RedisType, SchemaIndex, SchemaIndexEntry
from schemas.symbols import SYMBOL_PATTERN

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "schemas" / "json"
GENERATOR = "tools/json_schemas.py"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


class RedisValue(NamedTuple):
    """A JSON value tickwire writes to Redis: its schema name, where it lives, and its model."""

    name: str
    redis: str
    redis_type: RedisType
    model: type[BaseModel]
    description: str
    field: str | None = None


def redis_values() -> tuple[RedisValue, ...]:
    """Every JSON value in Redis, named by the functions of schemas/topics.py (placeholders in braces)."""
    symbol, account = "{SYMBOL}", "{account}"
    return (
        RedisValue("redis.price", topics.price_key(symbol), "string", events.PriceSnapshot,
                   "the latest validated price of a symbol (expires after TICKWIRE_PRICE_TTL_SECONDS)"),
        RedisValue("redis.price.updated", topics.price_channel(symbol), "channel", events.PriceUpdated,
                   "one message per change of a symbol's latest price"),
        RedisValue("redis.price.stream", topics.price_stream(symbol), "stream", events.PriceUpdated,
                   "the price channel's messages kept in a capped stream, for readers that resume",
                   field=topics.STREAM_DATA_FIELD),
        RedisValue("redis.positions", topics.positions_key(account), "hash", events.Position,
                   "an account's open positions, one field per symbol", field=symbol),
        RedisValue("redis.pnl", topics.pnl_key(account), "hash", events.PositionPnL,
                   "an account's valued positions, one field per symbol", field=symbol),
        RedisValue("redis.pnl_total", topics.pnl_total_key(account), "string", events.AccountPnL,
                   "an account's total unrealized P&L over its open positions"),
        RedisValue("redis.pnl.updated", topics.pnl_channel(account), "channel", events.PnLUpdated,
                   "one message per revaluation of one of the account's positions"),
        RedisValue("redis.pnl.stream", topics.pnl_stream(account), "stream", events.PnLUpdated,
                   "the P&L channel's messages kept in a capped stream, for readers that resume",
                   field=topics.STREAM_DATA_FIELD),
        RedisValue("redis.close", topics.close_key(symbol), "string", events.PreviousClose,
                   "a symbol's last official close, the mark when no live price exists"),
        RedisValue("redis.trade", topics.last_trade_key(symbol), "string", events.LastTrade,
                   "a symbol's latest valid trade, the mark under TICKWIRE_MARK_POLICY=last (with the price TTL)"),
        RedisValue("redis.ingest_status", topics.INGEST_STATUS_KEY, "string", events.IngestStatus,
                   "what the active ingest is doing, refreshed every second (short TTL)"),
    )


def placeholders() -> dict[str, str]:
    """Placeholder -> the regular expression (ECMA-262 and Python alike, unanchored) its text matches."""
    def bare(pattern: str) -> str:
        return pattern.removeprefix("^").removesuffix("$")

    symbol = bare(SYMBOL_PATTERN.pattern)
    return {"SYMBOL": symbol, "symbol": symbol, "account": bare(ACCOUNT_PATTERN.pattern), "source": "[^:]+"}


def key_schema(topic: str, key: str, description: str, patterns: dict[str, str]) -> dict[str, Any]:
    """A topic's key: a string whose format (``symbol``, ``{account}:{symbol}``, ...) becomes an anchored pattern."""
    schema: dict[str, Any] = {"$schema": DIALECT, "title": f"{topic} key", "type": "string"}
    if topic in (topics.QUOTES_REJECTED.name, topics.POSITIONS_REJECTED.name):
        # A dead letter keeps the key of the record it came from, which may be what was wrong with it.
        schema["description"] = f"the key of the rejected record, as it was ({description})"
        return schema
    template = key if "{" in key else "{" + key + "}"
    unknown = set(PLACEHOLDER.findall(template)) - patterns.keys()
    if unknown:
        raise ValueError(f"topic {topic}: key format {key!r} has placeholders with no pattern: {sorted(unknown)}")
    parts = PLACEHOLDER.split(template)  # literal, placeholder, literal, ...
    pattern = "".join(_escape(part) if i % 2 == 0 else f"({patterns[part]})" for i, part in enumerate(parts))
    schema.update(description=f"{template}: {description}", pattern=f"^{pattern}$")
    return schema


def value_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What ``model.to_json()`` writes: pydantic's serialization-mode schema, unknown fields refused."""
    schema = model.model_json_schema(mode="serialization")
    for definition in (schema, *schema.get("$defs", {}).values()):
        if "properties" in definition:
            # extra="allow" models already say additionalProperties: true (the raw Alpaca events).
            definition.setdefault("additionalProperties", False)
    return {"$schema": DIALECT, **schema}


def render() -> dict[str, str]:
    """File name -> text of every file of schemas/json/, index.json included."""
    patterns = placeholders()
    schemas: dict[str, dict[str, Any]] = {}
    entries: dict[str, SchemaIndexEntry] = {}
    for spec in topics.ALL_TOPICS:
        key, value = f"topic.{spec.name}.key", f"topic.{spec.name}.value"
        schemas[key] = key_schema(spec.name, spec.key, spec.description, patterns)
        entries[key] = SchemaIndexEntry(file=f"{key}.json", kind="topic", part="key", topic=spec.name,
                                        description=spec.description)
        schemas[value] = value_schema(spec.value)
        entries[value] = SchemaIndexEntry(file=f"{value}.json", kind="topic", part="value", topic=spec.name,
                                          model=spec.value.__name__, description=spec.description,
                                          compacted=spec.compacted, tombstones=spec is topics.POSITIONS)
    for redis_value in redis_values():
        schemas[redis_value.name] = value_schema(redis_value.model)
        entries[redis_value.name] = SchemaIndexEntry(
            file=f"{redis_value.name}.json", kind="redis", part="value", redis=redis_value.redis,
            redis_type=redis_value.redis_type, field=redis_value.field, model=redis_value.model.__name__,
            description=redis_value.description)
    index = SchemaIndex(dialect=DIALECT, generator=GENERATOR, placeholders=patterns, schemas=entries)
    files = {entries[name].file: _dumps(schema) for name, schema in schemas.items()}
    files[INDEX_FILE] = _dumps(index.model_dump(mode="json", exclude_none=True))
    return files


def _escape(literal: str) -> str:
    # Only the characters that are syntax in both Python and ECMA-262 (whose unicode mode refuses "\\-" or "\\:").
    return re.sub(r"[.^$*+?()\[\]{}|\\/]", lambda m: "\\" + m.group(), literal)


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    files = render()
    current = {path.name: path.read_text() for path in OUT.glob("*.json")} if OUT.is_dir() else {}
    if "--check" in argv:
        stale = sorted(name for name in files.keys() | current.keys() if files.get(name) != current.get(name))
        for name in stale:
            print(f"schemas/json/{name} is stale: python {GENERATOR}", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name in current.keys() - files.keys():
        (OUT / name).unlink()  # a schema whose topic or Redis value is gone
    for name, text in files.items():
        if current.get(name) != text:
            (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
