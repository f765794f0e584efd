"""The published JSON Schemas (``schemas/json/``): their index, and reading them back.

``tools/json_schemas.py`` writes one JSON Schema (draft 2020-12) per Kafka topic key and value and per Redis
value from the pydantic models, plus ``index.json``, which a service in any language reads first: schema name
-> file, and where the values it describes live. The files ship in the wheel; the API serves them at
``/schemas``. Nothing here reads a file until asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DIALECT = "https://json-schema.org/draft/2020-12/schema"
INDEX_FILE = "index.json"
RedisType = Literal["string", "hash", "channel", "stream"]


class SchemaIndexEntry(BaseModel):
    """One published schema: its file, and the Kafka topic or Redis name whose keys or values it describes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(description="the schema's file, beside index.json (also GET /schemas/{name})")
    kind: Literal["topic", "redis"]
    part: Literal["key", "value"] = Field(description="the Kafka record's key or value, or the Redis value")
    topic: str | None = Field(None, description="kind topic: the Kafka topic")
    redis: str | None = Field(None, description="kind redis: the key or channel, placeholders in braces")
    redis_type: RedisType | None = Field(
        None, description="kind redis: where the value is: a string key (GET), a hash field (HGET), a channel "
                          "message (SUBSCRIBE) or a stream entry's field (XREAD)")
    field: str | None = Field(None, description="hash: which field (a placeholder); stream: the entry's one field")
    model: str | None = Field(None, description="the pydantic model in schemas/events.py (values only)")
    description: str
    compacted: bool | None = Field(None, description="kind topic: compacted (the latest value of every key kept)")
    tombstones: bool | None = Field(None, description="kind topic, value: a null value (tombstone) is meaningful")


class SchemaIndex(BaseModel):
    """``index.json``: every published schema by name, and the patterns of the placeholders in names and keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dialect: str = Field(description="the JSON Schema dialect of every file")
    generator: str = Field(description="what wrote the files (regenerate with it)")
    placeholders: dict[str, str] = Field(description="placeholder -> the regular expression its text matches")
    schemas: dict[str, SchemaIndexEntry]


def schema_directory() -> Traversable:
    """The folder of the published schemas, inside the installed ``schemas`` package."""
    return resources.files("schemas") / "json"


@dataclass(frozen=True)
class PublishedSchemas:
    """The index and every schema's text, read once (the API serves them as they are on disk)."""

    index: SchemaIndex
    index_text: bytes
    texts: dict[str, bytes]  # schema name -> its file's bytes

    @classmethod
    def load(cls, directory: Traversable | None = None) -> PublishedSchemas:
        """Read ``index.json`` and every file it names (OSError or ValidationError when one is missing or bad)."""
        folder = directory or schema_directory()
        index_text = folder.joinpath(INDEX_FILE).read_bytes()
        index = SchemaIndex.model_validate_json(index_text)
        texts = {name: folder.joinpath(entry.file).read_bytes() for name, entry in index.schemas.items()}
        return cls(index, index_text, texts)


__all__ = [
    "DIALECT",
    "INDEX_FILE",
    "PublishedSchemas",
    "RedisType",
    "SchemaIndex",
    "SchemaIndexEntry",
    "schema_directory",
]
