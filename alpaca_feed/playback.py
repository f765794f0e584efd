"""Replays a recorded session through the feed: in file order, at real time, N times faster, or as fast as possible.

Pacing follows the messages' own times: each message is due ``(t - t_first) / speed`` after the
replay starts, with the clock never running backwards, so a bar (stamped at its minute's start, sent
after the minute) goes out right after the trades before it, as it did live. Timestamps are sent as
recorded unless ``shift_to_now`` moves the whole session so that its first message is "now".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

from alpaca_feed.recording import RecordingReader
from schemas.timestamps import NS_PER_SECOND, now_ns

log = logging.getLogger(__name__)

READ_BATCH = 5_000
# Messages due within this window go out together (one frame per session instead of many).
COALESCE_SECONDS = 0.002


class Playback:
    """One replay of ``path`` into ``publish`` (the server's path: history, then subscribers).

    Args:
        speed: 1.0 = real time, N = N times faster, 0 = as fast as the clients read.
        shift_to_now: move every ``t`` by the same amount so the first message is stamped now.
        loop: start again at the end of the file, forever (times shifted forward each round).
        wait_until_ready: awaited before the first message (the server waits for a subscriber).
        backpressure: awaited between batches when ``speed`` is 0 (waits for slow sessions to drain).
    """

    def __init__(
        self,
        path: Path | str,
        publish: Callable[[list[dict[str, Any]]], object],
        *,
        speed: float = 1.0,
        shift_to_now: bool = False,
        loop: bool = False,
        wait_until_ready: Callable[[], Awaitable[None]] | None = None,
        backpressure: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no recording at {self.path}")
        self._publish = publish
        self.speed = speed
        self.shift_to_now = shift_to_now
        self.loop = loop
        self._wait_until_ready = wait_until_ready
        self._backpressure = backpressure
        self.sent = 0
        self.skipped = 0
        self.rounds = 0

    async def run(self) -> int:
        """Replay the file (forever with ``loop``); returns how many messages were sent."""
        if self._wait_until_ready is not None:
            await self._wait_until_ready()
        log.info("replaying %s at %s", self.path, f"{self.speed}x" if self.speed else "full speed")
        offset = 0
        while True:
            first, last = await self._one_round(offset)
            self.rounds += 1
            if not self.loop or first is None:
                break
            offset += last - first + NS_PER_SECOND  # the next round follows the last one in time
        log.info("replay of %s done: %d messages, %d skipped", self.path, self.sent, self.skipped)
        return self.sent

    async def _one_round(self, offset: int) -> tuple[int | None, int]:
        reader = RecordingReader(self.path)
        batches: Generator[list[dict[str, Any]], None, None] = reader.batches(READ_BATCH)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_t: int | None = None
        shift = offset
        clock = 0  # the replay's own time, in the recording's ns; never goes back
        last_t = 0
        try:
            while True:
                batch = await asyncio.to_thread(next, batches, None)  # file I/O off the loop
                if batch is None:
                    break
                if first_t is None:
                    first_t = clock = batch[0]["t"]
                    if self.shift_to_now:
                        shift = now_ns() - first_t + offset
                pending: list[dict[str, Any]] = []
                for message in batch:
                    t = message["t"]
                    last_t = max(last_t, t)
                    if shift:
                        message["t"] = t + shift
                    if self.speed:
                        clock = max(clock, t)
                        due = started + (clock - first_t) / NS_PER_SECOND / self.speed
                        wait = due - loop.time()
                        if wait > COALESCE_SECONDS:
                            self._send(pending)
                            pending = []
                            await asyncio.sleep(wait)
                    pending.append(message)
                self._send(pending)
                if not self.speed and self._backpressure is not None:
                    await self._backpressure()
                else:
                    await asyncio.sleep(0)  # let sessions write between batches
        finally:
            self.skipped += reader.skipped
            try:
                batches.close()  # closes the file now rather than at garbage collection
            except ValueError:
                pass  # a cancelled read is still running in its thread; it closes the file when done
        return first_t, last_t

    def _send(self, messages: list[dict[str, Any]]) -> None:
        if messages:
            self._publish(messages)
            self.sent += len(messages)
