"""The one way a tickwire process learns it should stop: SIGINT (Ctrl-C) or SIGTERM (a supervisor, docker stop)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

__all__ = ["STOP_SIGNALS", "on_stop_signals", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signals(callback: Callable[[], object]) -> None:
    """Call ``callback`` on the running loop when SIGINT or SIGTERM arrives."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: the process's cue to stop cleanly."""
    stop = asyncio.Event()
    on_stop_signals(stop.set)
    return stop
