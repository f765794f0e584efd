"""ChangelogTable: a stage's state table, in memory for the partitions it owns, backed by a compacted changelog.

Writes are remembered as changes; before each offset commit the stage sends them to the table's changelog topic
(:meth:`ChangelogTable.changelog_records`: one record per key, the newest value), so a member taking a
partition over restores (:meth:`ChangelogTable.restore_partitions`) at least the state of the committed offset.
The changelog is partitioned like the stage's input (its keys are the input's keys), so partition ``p`` of the
changelog holds the state of input partition ``p``. Which value wins a restore is the stage's rule (``newer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import orjson
from aiokafka import TopicPartition

from tickwire.runtime.restore import newest_by_key, read_ranges
from tickwire.settings import TickwireSettings

Json = dict[str, Any]


class ChangelogTable(MutableMapping[str, Json]):
    """key -> JSON object; writes are remembered as changed until :meth:`take_changed`."""

    def __init__(self, changelog: str, newer: Callable[[Json, Json | None], bool] | None = None) -> None:
        self.changelog = changelog
        # restore keeps a value where newer(restored, current) says so (None: the restored value always wins)
        self._newer = newer
        self._values: dict[str, Json] = {}
        self._changed: set[str] = set()

    def __getitem__(self, key: str) -> Json:
        return self._values[key]

    def __setitem__(self, key: str, value: Json) -> None:
        self._values[key] = value
        self._changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        self._changed.discard(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def restore(self, entries: Iterable[tuple[str, Json]]) -> None:
        """Take restored entries where the table's rule prefers them; they are not changes to write."""
        for key, value in entries:
            if self._newer is None or self._newer(value, self._values.get(key)):
                self._values[key] = value

    def forget(self, keys: Iterable[str]) -> None:
        """Drop keys whose partitions this member no longer owns."""
        for key in keys:
            self._values.pop(key, None)
            self._changed.discard(key)

    def take_changed(self) -> dict[str, Json]:
        """The keys written since the last call, with their newest value; clears the set."""
        changed = {key: self._values[key] for key in self._changed if key in self._values}
        self._changed.clear()
        return changed

    def changelog_records(self) -> list[tuple[bytes, bytes]]:
        """The changes since the last call as changelog records (key, JSON value); clears them."""
        return [(key.encode(), orjson.dumps(value)) for key, value in self.take_changed().items()]

    def records(self) -> list[tuple[bytes, bytes]]:
        """Every entry as a record (key, JSON value)."""
        return [(key.encode(), orjson.dumps(value)) for key, value in self._values.items()]

    def mark_all_changed(self) -> None:
        """Write every entry to the changelog again with the next changes (outputs since the last commit lost)."""
        self._changed.update(self._values)

    async def restore_partitions(self, settings: TickwireSettings, partitions: Iterable[int]) -> dict[str, int]:
        """Read the changelog's ``partitions`` to their end into the table; returns key -> partition read."""
        wanted = {TopicPartition(self.changelog, p): (0, None) for p in partitions}
        if not wanted:
            return {}
        state = await read_ranges(settings, wanted)
        where: dict[str, int] = {}
        for tp, records in state.items():
            entries = []
            for key, value in newest_by_key(records).items():
                decoded = _json_object(value)
                if decoded is not None:
                    entries.append((key.decode("utf-8", "replace"), decoded))
                    where[entries[-1][0]] = tp.partition
            self.restore(entries)
        return where


def _json_object(value: bytes) -> Json | None:
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None
