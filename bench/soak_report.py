"""The soak's verdict and files: ``soak.md`` (the rows, the totals, the checks) and ``soak.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.soak import clock

RSS_TOLERANCE = 0.15  # broker and processor RSS within ±15 % of their value at 10 minutes
P99_TOLERANCE = 0.25  # tick→Redis p99 of the last 5 minutes at most 25 % above the first 5 (faster is fine)
RSS_CHECKED = ("broker", "processor")  # and every further processor worker (processor2, ...)


def soak_checks(soak: dict[str, Any]) -> list[tuple[str, bool]]:
    """The soak's four checks as (what was measured, met)."""
    return [_rss_check(soak), _disk_check(soak), _p99_check(soak), _oracle_check(soak)]


def _rss_check(soak: dict[str, Any]) -> tuple[str, bool]:
    baseline, at = soak["rss_baseline_mib"], clock(soak["baseline_s"])
    later = [row["rss_mib"] for row in soak["rows"] if row["t_s"] >= soak["baseline_s"]]
    parts, ok = [], bool(later)
    for name in sorted(n for n in baseline if n.startswith(RSS_CHECKED)):
        values = [rss[name] for rss in later if name in rss]
        if not values or not baseline[name]:
            parts.append(f"{name} not measured")
            ok = False
            continue
        low, high = min(values) / baseline[name] - 1, max(values) / baseline[name] - 1
        ok = ok and max(-low, high) <= RSS_TOLERANCE
        parts.append(f"{name} {baseline[name]:.0f} → {min(values):.0f}-{max(values):.0f} MiB ({low:+.0%}/{high:+.0%})")
    return (f"broker and processor RSS within ±{RSS_TOLERANCE:.0%} of their value at {at}, at every row "
            f"after it: {'; '.join(parts) or 'no row after it'}", ok)


def _disk_check(soak: dict[str, Any]) -> tuple[str, bool]:
    retention, end = soak["retention"], soak["disk_end"]
    peak = max([row["stream_disk_mib"] for row in soak["rows"]] + [end["stream_mib"]])
    return (f"stream topics' disk ≤ their retention ({retention['hours']:g} h, and {retention['mb_per_partition']} "
            f"MiB and one segment per partition, {retention['partitions']} partitions each: "
            f"{retention['bound_mib']:.0f} MiB): at most "
            f"{peak:.1f} MiB (the data directory {end['total_mib']:.1f} MiB at the end, "
            f"{end['total_mib'] - end['stream_mib']:.1f} of it compacted topics, offsets, metadata and logs)",
            peak <= retention["bound_mib"])


def _p99_check(soak: dict[str, Any]) -> tuple[str, bool]:
    first, last = soak["tick_to_redis_first"]["p99_ms"], soak["tick_to_redis_last"]["p99_ms"]
    window = clock(soak["window_s"])
    if not first or last is None:
        return f"tick→Redis p99 of the last {window} at most {P99_TOLERANCE:.0%} above the first: not measured", False
    change = last / first - 1
    # A warming JVM makes the first window the slow one: only a slowdown over the run counts against it.
    return (f"tick→Redis p99 of the last {window} at most {P99_TOLERANCE:.0%} above the first {window}: "
            f"{last:.1f} vs {first:.1f} ms ({change:+.0%})", change <= P99_TOLERANCE)


def _oracle_check(soak: dict[str, Any]) -> tuple[str, bool]:
    oracle = soak["oracle"]
    return (f"the oracle finds 0 mismatches on the quiesced pipeline: {oracle['summary']}", oracle["mismatches"] == 0)


def render_soak(results: dict[str, Any]) -> str:
    """The Markdown of a soak's results."""
    soak, cfg, machine = results["designs"]["pipeline"]["soak"], results["config"], results["machine"]
    retention, totals = soak["retention"], soak["totals"]
    names = sorted({name for row in soak["rows"] for name in row["rss_mib"]})
    lines = [
        "# tickwire soak", "",
        f"The pipeline at {soak['rate']} quotes/s for {clock(soak['seconds'])} on the embedded Kafka broker, "
        f"{cfg['feed_shape']} feed, {cfg['symbols']} symbols, {cfg['positions']} positions; stream topics keep "
        f"{retention['hours']:g} h and at most {retention['mb_per_partition']} MiB per partition. Machine: "
        f"{machine['cpus']} CPUs, Python {machine['python']}, load average before {machine['load_average_before'][0]}, "
        f"after {machine['load_average_after'][0]}. Run took {results['duration_s']:.0f} s."
        + (f" Pipeline settings: {cfg['env']}." if cfg.get("env") else ""), "",
        f"A row every {clock(soak['report_every_s'])}: quotes/s in (generated) and out (finished), each consumer "
        "group's lag (records past its committed offsets, which trail by up to a commit interval), tick→Redis of "
        "the sampled quotes stamped since the row before, RSS (MiB) of every process, the broker's data directory "
        "(MiB; stream topics in brackets).", "",
        "| t | in/s | out/s | lag | tick→Redis p50 / p99 ms | " + " | ".join(names) + " | disk MiB |",
        "|---:|---:|---:|---|---|" + "---:|" * len(names) + "---:|",
    ]
    for row in soak["rows"]:
        latency = row["tick_to_redis"]
        lag = ", ".join(f"{group} {n}" for group, n in row["lag"].items()) or "-"
        lines.append(f"| {clock(row['t_s'])} | {row['in_per_s']:.0f} | {row['out_per_s']:.0f} | {lag} "
                     f"| {latency['p50_ms']} / {latency['p99_ms']} | "
                     + " | ".join(f"{row['rss_mib'].get(n, 0):.0f}" for n in names)
                     + f" | {row['disk_mib']:.0f} ({row['stream_disk_mib']:.0f}) |")
    lost = "?" if totals["lost"] is None else totals["lost"]
    lines += ["", f"Quotes in {totals['quotes_in']}, prices out {totals['prices_out']} (quotes accepted "
                  f"{totals['accepted']}, rejected {totals['rejected']}), lost {lost}; oracle mismatches "
                  f"{soak['oracle']['mismatches']} (real {soak['oracle']['real_mismatches']}).", "",
              "Checks:", ""]
    lines += [f"- {text} → {'**met**' if met else '**not met**'}" for text, met in soak_checks(soak)]
    if soak["oracle"]["examples"]:
        lines += ["", "Oracle mismatches (first ten):", ""] + [f"- {m}" for m in soak["oracle"]["examples"]]
    return "\n".join(lines) + "\n"


def write_soak(results: dict[str, Any], out_dir: Path) -> str:
    """``soak.md`` and ``soak.json`` (with the checks); returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    soak = results["designs"]["pipeline"]["soak"]
    soak["checks"] = [{"check": text, "met": met} for text, met in soak_checks(soak)]
    markdown = render_soak(results)
    (out_dir / "soak.md").write_text(markdown)
    (out_dir / "soak.json").write_text(json.dumps(results, indent=1) + "\n")
    return markdown
