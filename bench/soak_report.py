"""The soak's verdict and files: ``soak.md`` (the rows, the totals, the faults, the checks) and ``soak.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.soak import clock

RSS_TOLERANCE = 0.15  # no process of the pipeline grows more than 15 % past its value at 10 minutes
P99_TOLERANCE = 0.25  # tick→Redis p99 of the last 5 minutes at most 25 % above the first 5 (faster is fine)
RSS_UNCHECKED = ("bench", "feed")  # the harness and the load generator, not the pipeline under test
FAILING_HEALTH = ("unhealthy", "unreachable")


def soak_checks(soak: dict[str, Any]) -> list[tuple[str, bool]]:
    """The soak's checks as (what was measured, met). A day's rate changes by design, so its p99 drift is
    reported, not judged; a soak with the API (every new one) has its health judged, one with faults their
    recovery."""
    checks = [_rss_check(soak), _disk_check(soak)]
    if not soak.get("day"):
        checks.append(_p99_check(soak))
    if soak.get("health"):
        checks.append(_health_check(soak))
    if soak.get("faults"):
        checks.append(_faults_check(soak))
    if "price_audit" in soak:
        checks.append(_nothing_lost_check(soak))
    return [*checks, _oracle_check(soak)]


def _rss_check(soak: dict[str, Any]) -> tuple[str, bool]:
    baseline, at = soak["rss_baseline_mib"], clock(soak["baseline_s"])
    later = [row["rss_mib"] for row in soak["rows"] if row["t_s"] >= soak["baseline_s"]]
    parts, ok = [], bool(later)
    for name in sorted(n for n in baseline if n not in RSS_UNCHECKED):
        values = [rss[name] for rss in later if name in rss]
        if not values or not baseline[name]:
            parts.append(f"{name} not measured")
            ok = False
            continue
        growth = max(values) / baseline[name] - 1
        ok = ok and growth <= RSS_TOLERANCE
        parts.append(f"{name} {baseline[name]:.0f} → {min(values):.0f}-{max(values):.0f} MiB ({growth:+.0%})")
    return (f"no pipeline process's RSS more than {RSS_TOLERANCE:.0%} above its value at {at}, at any row "
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


def _health_check(soak: dict[str, Any]) -> tuple[str, bool]:
    health = soak["health"]
    outside = health["outside_faults"]
    failing = sum(outside.get(status, 0) for status in FAILING_HEALTH)
    return (f"/health never unhealthy (nor unanswered) outside the faults' windows, asked every "
            f"{health['every_s']:g}s: {_counts(outside)} outside them, {_counts(health['counts'])} in all",
            failing == 0)


def _faults_check(soak: dict[str, Any]) -> tuple[str, bool]:
    faults = soak["faults"]
    parts = [f"{f['fault']} at {clock(f['began_s'])}, "
             + (f"subscribed again after {f['ended_s'] - f['began_s']:.0f}s" if f["recovered"] else
                f"not recovered ({f['detail'] or 'no record from the feed'})") for f in faults]
    return (f"the ingest came back from every feed fault by itself: {'; '.join(parts)}",
            all(f["recovered"] for f in faults))


def _nothing_lost_check(soak: dict[str, Any]) -> tuple[str, bool]:
    totals, audit = soak["totals"], soak["price_audit"]
    lost = totals["lost"]
    return (f"nothing lost: every quote the ingest received was published and finished (lost "
            f"{'?' if lost is None else lost}; the {totals.get('undelivered', 0):,} the faults kept from it are "
            f"their cost, not a loss), and every quote that must become a price is on `prices` (gaps "
            f"{audit['gaps']} of {audit['expected']:,}; duplicates {audit['duplicates']}, not judged)",
            lost == 0 and audit["gaps"] == 0)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in sorted(counts.items())) or "no answer"


def _oracle_check(soak: dict[str, Any]) -> tuple[str, bool]:
    oracle = soak["oracle"]
    return (f"the oracle finds 0 mismatches on the quiesced pipeline: {oracle['summary']}", oracle["mismatches"] == 0)


def render_soak(results: dict[str, Any]) -> str:
    """The Markdown of a soak's results."""
    soak, cfg, machine = results["designs"]["pipeline"]["soak"], results["config"], results["machine"]
    retention, day = soak["retention"], soak.get("day")
    names = sorted({name for row in soak["rows"] for name in row["rss_mib"]})
    if day:
        what = (f"A trading day of {day['quotes']:,.0f} quotes in {clock(day['seconds'])} (average "
                f"{day['average_per_s']:,.0f}/s: " + ", ".join(f"{p['name']} {p['rate']:,.0f}/s from "
                                                             f"{clock(p['start_s'])}" for p in day["phases"])
                + f") through the pipeline, positions filled every {cfg['position_change_every_s']:g}s "
                  f"({cfg['position_change_count']} at a time), feed faults "
                + ", ".join(f"{name} at {share:.0%}" for name, share in cfg["faults"]) + ",")
    else:
        what = f"The pipeline at {soak['rate']} quotes/s for {clock(soak['seconds'])}"
    lines = [
        "# tickwire soak", "",
        f"{what} on the embedded Kafka broker, {cfg['feed_shape']} feed, {cfg['symbols']} symbols, "
        f"{cfg['positions']} positions ({cfg.get('positions_per_account', 10)} per account); stream topics keep "
        f"{retention['hours']:g} h and at most {retention['mb_per_partition']} MiB per partition. Machine: "
        f"{machine['cpus']} CPUs, Python {machine['python']}, load average before {machine['load_average_before'][0]}, "
        f"after {machine['load_average_after'][0]}. Run took {results['duration_s']:.0f} s."
        + (f" Pipeline settings: {cfg['env']}." if cfg.get("env") else ""), "",
        f"A row every {clock(soak['report_every_s'])}: the phase of the day and the rate it asks for (target), "
        "quotes/s in (generated) and out (finished), each consumer group's lag (records past its committed offsets, "
        "which trail by up to a commit interval), tick→Redis of the sampled quotes stamped since the row before, the "
        "API's /health answers during the row, RSS (MiB) of every process, the broker's data directory (MiB; stream "
        "topics in brackets), and the faults whose window (injection to recovery, and "
        f"{soak.get('fault_grace_s', 30):g}s more) overlaps the row.", "",
        "| t | phase | target/s | in/s | out/s | lag | tick→Redis p50 / p99 ms | health | "
        + " | ".join(names) + " | disk MiB | faults |",
        "|---:|---|---:|---:|---:|---|---|---|" + "---:|" * len(names) + "---:|---|",
    ]
    for row in soak["rows"]:
        latency = row["tick_to_redis"]
        lag = ", ".join(f"{group} {n}" for group, n in row["lag"].items()) or "-"
        lines.append(f"| {clock(row['t_s'])} | {row.get('phase', '')} | {row.get('target_per_s', soak['rate']):.0f} "
                     f"| {row['in_per_s']:.0f} | {row['out_per_s']:.0f} | {lag} "
                     f"| {latency['p50_ms']} / {latency['p99_ms']} | {_counts(row.get('health', {}))} | "
                     + " | ".join(f"{row['rss_mib'].get(n, 0):.0f}" for n in names)
                     + f" | {row['disk_mib']:.0f} ({row['stream_disk_mib']:.0f}) "
                     f"| {', '.join(row.get('faults', []))} |")
    lines += ["", totals_line(soak)]
    if soak.get("end_phase_s"):
        lines += ["", "After the soak: " + ", ".join(f"{step.replace('_', ' ')} {s:g} s"
                                                   for step, s in soak["end_phase_s"].items()) + "."]
    if soak.get("faults"):
        lines += ["", "Faults:", ""]
        lines += [f"- {f['fault']}: injected at {clock(f['began_s'])}, the ingest subscribed again at "
                  f"{'-' if f['ended_s'] is None else clock(f['ended_s'])}"
                  + (f" ({f['detail']})" if f["detail"] else "") for f in soak["faults"]]
    not_healthy = (soak.get("health") or {}).get("not_healthy", [])
    if not_healthy:
        lines += ["", "/health answers other than healthy:", ""]
        lines += [f"- {clock(h['t_s'])} {h['status']}" + (f" (during {', '.join(h['during'])})" if h["during"] else "")
                  + (f": {'; '.join(h['problems'])}" if h["problems"] else "") for h in not_healthy[:20]]
        if len(not_healthy) > 20:
            lines.append(f"- ... {len(not_healthy) - 20} more in soak.json")
    if day:
        first, last = soak["tick_to_redis_first"], soak["tick_to_redis_last"]
        lines += ["", f"tick→Redis p99 over the first {clock(soak['window_s'])} (the opening) {first['p99_ms']} ms, "
                      f"over the last (the close) {last['p99_ms']} ms: reported, not judged (the rates differ)."]
    lines += ["", "Checks:", ""]
    lines += [f"- {text} → {'**met**' if met else '**not met**'}" for text, met in soak_checks(soak)]
    if soak["oracle"]["examples"]:
        lines += ["", "Oracle mismatches (first ten):", ""] + [f"- {m}" for m in soak["oracle"]["examples"]]
    return "\n".join(lines) + "\n"


def totals_line(soak: dict[str, Any]) -> str:
    """Quotes in and where they went, prices out, duplicates, gaps, the ingest's repairs, the oracle's mismatches."""
    totals, audit, oracle = soak["totals"], soak.get("price_audit"), soak["oracle"]
    lost = "?" if totals["lost"] is None else f"{totals['lost']:,}"
    text = f"Quotes in {totals['quotes_in']:,} (generated)"
    if "delivered" in totals:
        text += (f", to the ingest {totals['delivered']:,} (kept from it by the faults {totals['undelivered']:,}), "
                 f"on `quotes.raw` {totals['on_topic']:,} ({totals['repaired']:,} of them gap repairs), finished "
                 f"{totals['finished']:,}")
    text += (f"; lost {lost}; prices out {totals['prices_out']:,} (to Redis; quotes accepted {totals['accepted']:,}, "
             f"rejected {totals['rejected']:,})")
    if audit:
        text += (f"; `prices` against `quotes.raw` (what both hold, start-up included): {audit['prices_read']:,} "
                 f"prices for {audit['quotes_read']:,} quotes, {audit['expected']:,} expected, duplicates "
                 f"{audit['duplicates']}, gaps {audit['gaps']}")
    if totals.get("position_changes"):
        text += f"; positions changed {totals['position_changes']:,}"
    ingest = totals.get("ingest")
    if ingest:
        text += (f"; ingest: gaps announced {ingest['gaps']}, messages repaired from REST {ingest['backfilled']:,} "
                 f"(failures {ingest['backfill_failures']}), reconnects {ingest['reconnects_total']}, "
                 f"overflow {ingest['overflow']}")
    return text + f"; oracle mismatches {oracle['mismatches']} (real {oracle['real_mismatches']})."


def write_soak(results: dict[str, Any], out_dir: Path) -> str:
    """``soak.md`` and ``soak.json`` (with the checks); returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    soak = results["designs"]["pipeline"]["soak"]
    soak["checks"] = [{"check": text, "met": met} for text, met in soak_checks(soak)]
    markdown = render_soak(results)
    (out_dir / "soak.md").write_text(markdown)
    (out_dir / "soak.json").write_text(json.dumps(results, indent=1) + "\n")
    return markdown
