"""``tickwire feed record``: capture a live Alpaca session to a file the local feed can replay.

Connects with the real alpaca-py ``StockDataStream`` in raw mode (so ``t`` keeps its nanoseconds),
subscribes the chosen channels and symbols, and appends every data message to a JSON Lines or msgpack
recording. The stream's handlers only enqueue; one task writes batches from a worker thread, so the
event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from alpaca.data.live import StockDataStream

from alpaca_feed.recording import RecordingFormat, RecordingWriter

log = logging.getLogger(__name__)

# Channels a recording can subscribe (corrections and cancel errors come with trades).
RECORDABLE_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
DEFAULT_CHANNELS = ("trades", "quotes", "bars")
_QUEUE_BOUND = 100_000
_WRITE_BATCH = 5_000
_STOP_TIMEOUT_SECONDS = 10.0


class Recorder:
    """Records ``channels`` x ``symbols`` from ``url`` into ``path`` until stopped.

    Attributes:
        written: messages written so far.
        dropped: messages lost because the disk fell behind (the queue is bounded).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        key: str,
        secret: str,
        url: str,
        symbols: Sequence[str],
        channels: Iterable[str] = DEFAULT_CHANNELS,
        fmt: RecordingFormat | None = None,
    ) -> None:
        channels = tuple(channels)
        unknown = [channel for channel in channels if channel not in RECORDABLE_CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; known: {', '.join(RECORDABLE_CHANNELS)}")
        if not symbols:
            raise ValueError("record at least one symbol")
        self.path = Path(path)
        self._fmt = fmt
        self._stream = StockDataStream(key, secret, raw_data=True, url_override=url)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_BOUND)
        self.written = 0
        self.dropped = 0
        self._subscribe(channels, tuple(symbols))

    def _subscribe(self, channels: tuple[str, ...], symbols: tuple[str, ...]) -> None:
        # alpaca-py annotates handlers with its models; in raw mode they receive plain dicts.
        stream, handle = self._stream, cast(Any, self._on_message)
        subscribe = {
            "trades": stream.subscribe_trades,
            "quotes": stream.subscribe_quotes,
            "bars": stream.subscribe_bars,
            "updatedBars": stream.subscribe_updated_bars,
            "dailyBars": stream.subscribe_daily_bars,
            "statuses": stream.subscribe_trading_statuses,
        }
        for channel in channels:
            if channel == "lulds":  # alpaca-py has no public call for LULD bands
                stream._subscribe(handle, cast(Any, symbols), stream._handlers["lulds"])
            else:
                subscribe[channel](handle, *symbols)
        if "trades" in channels:
            stream.register_trade_corrections(handle)
            stream.register_trade_cancels(handle)

    async def _on_message(self, message: dict[str, Any]) -> None:
        # The handler only enqueues: a slow handler would get the stream dropped as a slow client.
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("recording falls behind the stream: %d messages dropped", self.dropped)

    async def run(self, stop: asyncio.Event) -> int:
        """Record until ``stop`` is set; returns how many messages were written."""
        writer = await asyncio.to_thread(RecordingWriter, self.path, self._fmt)
        stream_task = asyncio.create_task(self._stream._run_forever(), name="feed-record-stream")
        write_task = asyncio.create_task(self._write(writer), name="feed-record-writer")
        try:
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({stopped, stream_task}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        finally:
            with contextlib.suppress(Exception):
                await self._stream.stop_ws()
            await self._end_receive_wait(stream_task)
            done, _ = await asyncio.wait({stream_task}, timeout=_STOP_TIMEOUT_SECONDS)
            if not done:
                stream_task.cancel()
                await asyncio.gather(stream_task, return_exceptions=True)
            await self._stream.close()  # alpaca-py leaves the socket open on cancel (#643)
            await self._queue.put({"__end__": True})
            await write_task
            await asyncio.to_thread(writer.close)
        log.info("recorded %d messages to %s (%d dropped)", self.written, self.path, self.dropped)
        return self.written

    async def _end_receive_wait(self, stream_task: asyncio.Task[Any]) -> None:
        # alpaca-py sees a stop only between 5 s receive polls; closing the socket ends the wait now
        # (alpaca-py logs it as a websocket error, then returns because a stop was requested).
        done, _ = await asyncio.wait({stream_task}, timeout=0.2)
        ws = self._stream._ws
        if not done and ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def _write(self, writer: RecordingWriter) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _WRITE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            end = "__end__" in batch[-1]
            if end:
                batch.pop()
            if batch:
                await asyncio.to_thread(self._write_batch, writer, batch)
            if end:
                return

    def _write_batch(self, writer: RecordingWriter, batch: list[dict[str, Any]]) -> None:
        writer.write(batch)
        writer.flush()  # a killed recorder keeps what it had received
        self.written += len(batch)
