"""BenchConfig: what one benchmark run does (rates, sizes, durations), with the defaults of ``make bench``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RATES = (200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 40_000)
DESIGNS = ("pipeline", "pipeline-eos", "direct")
# The pipeline under each processing guarantee: the same stack, TICKWIRE_PROCESSING_GUARANTEE apart.
GUARANTEES = {"pipeline": "at_least_once", "pipeline-eos": "exactly_once"}
# realistic: each symbol's quotes at its own random times in 5 ms frames, every quote moving the mid (the one
# judged); bursty: every symbol at once each tick (every 100 ms at 1,000/s), the shape before, as an extra.
FEED_SHAPES = ("realistic", "bursty")
# A soak's stream topics keep records this long (unless --set says otherwise), so retention deletes during an
# hour's soak and the oracle reads at most ~17 minutes of quotes.raw (an hour, 3.6 M quotes, would take it
# ~90 s and ~4 GiB); the size limit stays the default's.
SOAK_RETENTION_HOURS = 0.25
# `make soak`'s day (issue 26): 6.5 h at 1,000 quotes/s compressed into 90 minutes, 1,000 positions over 20 accounts.
DAY_QUOTES = 23_400_000
DAY_MINUTES = 90.0
DAY_POSITIONS_PER_ACCOUNT = 50
# The day's feed faults and when (share of the day): a dropped session in the morning, a mute socket in the
# afternoon; both outside the bursts, so the rows around them are judged on an ordinary rate.
DAY_FAULTS = (("drop", 0.3), ("mute", 0.7))


@dataclass(frozen=True)
class BenchConfig:
    """One run. Rates are total quotes per second over all symbols."""

    rates: tuple[int, ...] = DEFAULT_RATES
    symbols: int = 100
    positions: int = 1_000
    positions_per_account: int = 10
    sample_symbols: int = 10  # symbols whose every quote the probe times (the rest only count)
    warmup_s: float = 2.0
    # The first rate runs this much longer first: the broker's JVM compiles its hot paths in its first ~30 s
    # (its CPU per request falls ~3x), as a broker that has been up a while has.
    first_warmup_s: float = 30.0
    measure_s: float = 6.0
    burst_factor: float = 10.0
    burst_s: float = 1.0
    burst_watch_s: float = 3.0  # quotes stamped this long from the burst's start count as the burst's
    drain_timeout_s: float = 30.0
    designs: tuple[str, ...] = DESIGNS
    ceilings: bool = True
    refine: int = 1  # extra rates tried between the last sustained and the first unsustained one
    feed_shape: str = FEED_SHAPES[0]
    soak_s: float = 0.0  # > 0: a soak of this long at soak_rate instead of the rate series
    soak_rate: int = 1_000
    soak_report_s: float = 300.0  # a soak's report row every this many seconds
    day_quotes: int = 0  # > 0: the soak is a trading day of this many quotes over soak_s (bench.day_shape)
    faults: tuple[tuple[str, float], ...] = ()  # (fault, share of the soak) injected into the feed (a day's)
    position_change_every_s: float = 0.0  # > 0: a soak fills a few positions this often (a day's: 30 s)
    position_change_count: int = 5
    health_every_s: float = 5.0  # a soak samples the API's /health this often
    feed_history: int = 0  # quotes per symbol the feed's REST history keeps (0: its default, 1,000)
    out_dir: Path = Path("bench/results")
    run_dir: Path = Path(".tickwire/bench")
    seed: int = 0
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the pipeline's processes
    workers: int = 1  # processor workers of the pipeline (they share the partitions)
    stages_apart: bool = True  # each worker as two processes, the price stage and the P&L stage (as `tickwire run`)
    profile: tuple[str, ...] = ()  # processes to run under cProfile (stats in <run dir>/<design>/<name>.prof)

    def symbol_names(self) -> list[str]:
        """``S000``, ``S001``, ...: synthetic tickers, so nobody mistakes the figures for a real market's."""
        return [f"S{i:03d}" for i in range(self.symbols)]
