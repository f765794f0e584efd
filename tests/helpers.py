"""Test helpers: waiting on conditions with deadlines, reading topics, running tickwire processes."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer

from deploy.embedded.process import ManagedProcess

T = TypeVar("T")
V = TypeVar("V")
POLL_S = 0.05


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, *alive: ManagedProcess
) -> T:
    """Re-evaluate ``check`` until it returns something truthy, or fail after ``timeout`` seconds.

    Fails at once, with its log, if one of the ``alive`` processes has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        for process in alive:
            if not process.running:
                raise AssertionError(f"{process.name} exited while waiting for {what}:\n{process.tail(40)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(POLL_S)  # poll interval of a condition with a deadline


async def read_topic_until(
    bootstrap: str, topic: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning until ``predicate(all JSON object values so far)`` holds.

    Tombstones and values that are not JSON objects (other tests put garbage on the shared raw topics on
    purpose) are skipped.
    """
    return await read_values_until(bootstrap, topic, predicate, timeout, _json_object)


async def read_values_until(
    bootstrap: str, topic: str, predicate: Callable[[list[V]], bool], timeout: float,
    decode: Callable[[bytes | None], V | None], *, isolation_level: str = "read_uncommitted",
) -> list[V]:
    """Read ``topic`` from the beginning with ``isolation_level`` until ``predicate(values so far)`` holds;
    each record's value goes through ``decode``, and those it turns into None are skipped."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    values: list[V] = []
    deadline = time.monotonic() + timeout
    try:
        while not predicate(values):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic} ({isolation_level}); got {len(values)} records: "
                                     f"{values[-5:]}")
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                values.extend(v for v in (decode(r.value) for r in records) if v is not None)
        return values
    finally:
        await consumer.stop()


def _json_object(value: bytes | None) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may hold spaces; ppid follows the state field.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def command_line(pid: int) -> str:
    """The command line of a live process ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pids: list[int]) -> list[int]:
    """The pids in ``pids`` that still exist and are not zombies."""
    living = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.append(pid)
    return living


def tickwire_run_process(log_dir: Path, env: dict[str, str]) -> ManagedProcess:
    """``tickwire run`` as a user starts it; its stdout goes to the returned process's log."""
    return ManagedProcess("tickwire-run", [sys.executable, "-m", "tickwire", "run"],
                          log_dir / f"run-{uuid.uuid4().hex[:6]}.log", env)


def unique_symbol(prefix: str = "T") -> str:
    """A symbol no other test uses, so tests sharing a broker stay independent."""
    return (prefix + uuid.uuid4().hex[:6]).upper().replace("0", "Q").replace("1", "Z")[:8]


def tickwire_env(**overrides: str) -> dict[str, str]:
    """The environment for a tickwire child process: this one's, plus overrides."""
    ours = ("ALPACA_", "APCA_", "TICKWIRE_", "KAFKA_", "REDIS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env["TICKWIRE_RUN_DIR"] = tempfile.mkdtemp(prefix="tickwire-test-run-")
    env["TICKWIRE_API_PORT"] = "0"  # any free port: test runs must not collide on 8004
    # The suite under the other guarantee: TICKWIRE_TEST_PROCESSING_GUARANTEE=exactly_once make test
    guarantee = os.environ.get("TICKWIRE_TEST_PROCESSING_GUARANTEE")
    if guarantee:
        env["TICKWIRE_PROCESSING_GUARANTEE"] = guarantee
    env.update(overrides)
    return env


def processor_process(log_dir: Path, env: dict[str, str]) -> ManagedProcess:
    """A price processor worker as `tickwire run` starts it."""
    return ManagedProcess(
        "processor",
        [sys.executable, "-m", "tickwire", "processor"],
        log_dir / f"processor-{uuid.uuid4().hex[:6]}.log",
        env,
    )
