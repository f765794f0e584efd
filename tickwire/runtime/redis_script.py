"""PipelinedScript: a Lua script queued with EVALSHA in pipelines, loaded once instead of checked every time.

redis-py's ``Script``, called on a pipeline, makes the pipeline send ``SCRIPT EXISTS`` (and wait for
the answer) before every ``execute``: a second Redis round trip for every batch a stage writes.
Here the script is queued as a plain EVALSHA; if Redis does not know it (first use, a restarted or
flushed Redis), the caller loads it and runs its batch again (every projection is idempotent).

A batch's items travel as one argument, a MessagePack array (:func:`pack_items`) that the script reads
with ``cmsgpack.unpack``: redis-py encodes every argument in Python, a quarter of the processor's time in a
cProfile when each price or revaluation was an argument of its own (cProfile overstates such small calls).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

__all__ = ["NoScriptError", "PipelinedScript", "pack_items"]


def pack_items(items: Sequence[str | bytes | int]) -> bytes:
    """One script argument holding ``items`` (a Lua array of strings and numbers after ``cmsgpack.unpack``)."""
    # use_bin_type=False: the raw string format, the one every Redis's cmsgpack reads (Redis 6's rejects bin).
    return msgpack.packb(items, use_bin_type=False)


class PipelinedScript:
    """One Lua script for pipelines: ``queue`` it per update, ``load`` it after a NoScriptError."""

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[object]) -> None:
        """Queue one EVALSHA on ``pipe``."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[arg-type]

    async def load(self) -> None:
        """Make Redis know the script (SCRIPT LOAD is idempotent)."""
        await self.redis.script_load(self.source)
