"""Run a module under cProfile timed by CPU time, not wall time: ``python -m bench.cpu_profile OUT -m MODULE ARGS``.

On a busy machine wall-clock profiles charge a process for the time it waits for a core (a loopback
``send`` that wakes the receiver shows up as milliseconds); CPU time shows what the process itself costs.
Profiling starts at SIGRTMIN (the benchmark sends it when its first rate starts), so start-up and
loading the positions stay out of the figures.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time


def main() -> None:
    """Profile ``-m MODULE`` with its arguments; the stats go to OUT when it exits (SIGTERM included)."""
    out, flag, module, *args = sys.argv[1:]
    if flag != "-m":
        raise SystemExit(__doc__)
    sys.argv = [module, *args]
    profiler = cProfile.Profile(time.process_time)
    signal.signal(signal.SIGRTMIN, lambda signum, frame: profiler.enable())  # no library here uses it
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
