"""Fault scripts: JSON Lines of faults to trigger at times relative to the server's start.

Each line is ``{"at_s": 5.0, "fault": "drop", …arguments}``, e.g.
``{"at_s": 5, "fault": "drop", "close_frame": false}`` or ``{"at_s": 20, "fault": "mute", "seconds": 10}``.
Lines that are not JSON objects, lack ``at_s``/``fault`` or name an unknown fault are skipped with one
log line each; a fault that fails when it runs is logged and the script goes on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from alpaca_feed.faults import FAULT_NAMES, FeedFaults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptedFault:
    """One line of a fault script."""

    at_s: float
    fault: str
    arguments: dict[str, Any] = field(default_factory=dict)


def parse_fault_script(text: str, source: str = "fault script") -> list[ScriptedFault]:
    """The valid lines of a script, in time order (stable for equal times)."""
    steps: list[ScriptedFault] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            log.warning("%s line %d skipped: not JSON (%s)", source, number, exc)
            continue
        if not isinstance(entry, dict):
            log.warning("%s line %d skipped: not a JSON object", source, number)
            continue
        at_s, name = entry.pop("at_s", None), entry.pop("fault", None)
        if not isinstance(at_s, int | float) or isinstance(at_s, bool) or at_s < 0:
            log.warning("%s line %d skipped: at_s must be a number of seconds >= 0", source, number)
            continue
        if name not in FAULT_NAMES:
            known = ", ".join(FAULT_NAMES)
            log.warning("%s line %d skipped: unknown fault %r (known: %s)", source, number, name, known)
            continue
        steps.append(ScriptedFault(float(at_s), name, entry))
    return sorted(steps, key=lambda step: step.at_s)


def load_fault_script(path: Path | str) -> list[ScriptedFault]:
    """Read and parse a script file (small: read at start-up, before the loop serves anyone)."""
    path = Path(path)
    return parse_fault_script(path.read_text(), str(path))


async def run_fault_script(faults: FeedFaults, steps: list[ScriptedFault], started: float) -> int:
    """Trigger each step at ``started + at_s`` (loop time); returns how many faults ran."""
    loop = asyncio.get_running_loop()
    ran = 0
    for step in steps:
        delay = started + step.at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            result = await faults.apply(step.fault, step.arguments)
        except Exception as exc:  # a bad step must not end the script or the server
            log.warning("fault script: %s %s failed at %.1fs: %s", step.fault, step.arguments, step.at_s, exc)
            continue
        ran += 1
        log.info("fault script: %s %s at %.1fs -> %s", step.fault, step.arguments, step.at_s, result)
    return ran
