"""The ``tail``, ``replay`` and ``diff`` commands (registered on the ``tickwire`` CLI)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from consumers.tools.bounds import TIME_FIELDS, parse_bound
from consumers.tools.topic_range import RangeError
from schemas.topics import QUOTES_RAW
from tickwire.signals import on_stop_signals

LIVE_MOVED_EXIT = 3  # diff/check: no real difference, but the live side moved past the cut that was compared

SymbolOption = Annotated[
    list[str] | None, typer.Option("--symbol", "-s", help="only this symbol (repeat, or comma-separate)")
]
TimeFieldOption = Annotated[
    str, typer.Option(help="the time --*-time compares: 'record' (Kafka timestamp), 'received_at' or 't' (payload)")
]
errors = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)  # soft_wrap: an error stays one line
EXAMPLES = {"KAFKA_BOOTSTRAP_SERVERS": "localhost:9092", "REDIS_URL": "redis://localhost:6379/0"}


def _symbols(values: list[str] | None) -> frozenset[str]:
    from schemas.symbols import normalize_symbol

    items = [item for value in values or [] for item in value.split(",") if item.strip()]
    try:
        return frozenset(normalize_symbol(item) for item in items)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--symbol") from None


def _time_field(value: str) -> Any:
    if value not in TIME_FIELDS:
        raise typer.BadParameter(f"expected one of {', '.join(TIME_FIELDS)}", param_hint="--time-field")
    return value


def _bound(offset: str | None, time: str | None, what: str) -> Any:
    try:
        return parse_bound(offset, time, what)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"--{what}-offset / --{what}-time") from None


def _run(main: Coroutine[Any, Any, int], cancelled: int = 130) -> int:
    """Run a command's coroutine; Ctrl-C or SIGTERM cancels it cleanly and exits with ``cancelled``."""
    async def runner() -> int:
        task = asyncio.ensure_future(main)
        on_stop_signals(task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return cancelled
    return asyncio.run(runner())


def _settings(needs: tuple[str, ...] = ("KAFKA_BOOTSTRAP_SERVERS",)) -> Any:
    """The tools' settings, with the servers of a running ``tickwire run`` when unset; exit 2 if one is missing.

    ``needs`` names the variables the command cannot do without (KAFKA_BOOTSTRAP_SERVERS, REDIS_URL).
    """
    from consumers.tools.settings import ToolSettings
    from tickwire.cli_errors import reported_errors
    from tickwire.endpoints import not_set_message, with_running_stack
    from tickwire.logging import configure_logging

    with reported_errors():  # a bad variable or a stale endpoints file: one line, exit 2
        settings = with_running_stack(ToolSettings())
    configure_logging("WARNING", settings.log_format)  # a tool's output is its own: library chatter only if it matters
    values = {"KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "REDIS_URL": settings.redis_url}
    for variable in needs:
        if not values[variable]:
            example = EXAMPLES[variable]
            errors.print(f"error: {not_set_message(variable, example)}", markup=False)
            raise typer.Exit(2)
    return settings


def tail_command(
    topic: Annotated[str, typer.Argument(help="topic to read, e.g. quotes.raw, prices, prices.replay.RUN")],
    from_offset: Annotated[str | None, typer.Option(help="start offset: N in every partition, or P:N,P:N")] = None,
    from_time: Annotated[str | None, typer.Option(help="start time: RFC 3339, 'now', or an age (90s, 15m, 2h)")] = None,
    symbol: SymbolOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="'table' or 'json' (one object per line)")] = "table",
    follow: Annotated[bool, typer.Option(help="keep waiting for new records (--no-follow: stop at the end)")] = True,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after this many records")] = None,
    time_field: TimeFieldOption = "record",
) -> None:
    """Pretty-print a topic: live (default), or from an offset or a time; filter by symbol."""
    from aiokafka import AIOKafkaConsumer

    from consumers.tools.tail import TailRequest, tail
    from tickwire.kafka import READ_ISOLATION, aiokafka_security, bootstrap_list
    from tickwire.logging import quiet_library_logs

    if output not in ("table", "json"):
        raise typer.BadParameter("expected 'table' or 'json'", param_hint="--output")
    request = TailRequest(topic, _bound(from_offset, from_time, "from"), _symbols(symbol), output,  # type: ignore[arg-type]
                          follow, limit, _time_field(time_field))
    settings = _settings()

    async def main() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_list(settings.kafka_bootstrap_servers),
                                    group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100,
                                    isolation_level=READ_ISOLATION, **aiokafka_security(settings))
        try:
            with quiet_library_logs("aiokafka"):  # a closed port is one line (tickwire/cli_errors), not a log per try
                await consumer.start()
        except BaseException:
            await consumer.stop()  # no "Unclosed AIOKafkaConsumer" after the error line
            raise
        try:
            await tail(consumer, request, sys.stdout, asyncio.Event(), ready=lambda line: errors.print(escape(line)))
            return 0
        except RangeError as exc:
            errors.print(f"[red]{escape(str(exc))}[/red]")
            return 2
        finally:
            await consumer.stop()

    raise typer.Exit(_run(main(), cancelled=0))  # Ctrl-C is how a live tail ends


class _RichProgress:
    """A rich progress bar on stderr: offsets read of the range, records replayed, rate."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]replay[/bold]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[replayed]} replayed, {task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self.task: Any = None

    def started(self, replay_range: Any) -> None:
        for note in replay_range.notes:
            self.progress.console.print(f"[yellow]note:[/yellow] {escape(note)}")
        self.progress.start()
        self.task = self.progress.add_task("replay", total=replay_range.size, replayed=0, rate="")

    def advanced(self, offsets: int, replayed: int) -> None:
        task = self.progress.tasks[0]
        total = task.fields["replayed"] + replayed
        rate = f"{total / task.elapsed:,.0f} msg/s" if task.elapsed else ""
        self.progress.update(self.task, advance=offsets, replayed=total, rate=rate)

    def stop(self) -> None:
        self.progress.stop()


def replay_command(
    topics: Annotated[list[str] | None, typer.Argument(
        help="a topic naming the stage(s) to re-run: quotes.raw (prices), positions (P&L: with the marks and "
             "closes); default quotes.raw", show_default=False)] = None,
    from_offset: Annotated[str | None, typer.Option(
        help="first offset: N in every partition, or P:N,P:N (only the partitions named)")] = None,
    to_offset: Annotated[str | None, typer.Option(help="end offset (exclusive): N, or P:N,P:N")] = None,
    from_time: Annotated[str | None, typer.Option(help="start time: RFC 3339, 'now', or an age (90s, 15m, 2h)")] = None,
    to_time: Annotated[str | None, typer.Option(help="end time (exclusive), same forms")] = None,
    symbol: SymbolOption = None,
    run_id: Annotated[str | None, typer.Option(help="name of the run (default: r<UTC time>-<4 hex>)")] = None,
    speed: Annotated[float, typer.Option(min=0, help="0: as fast as possible; N: N times the recorded pace")] = 0.0,
    max_quote_age: Annotated[float | None, typer.Option(
        min=0, help="override TICKWIRE_MAX_QUOTE_AGE_SECONDS for this run (a what-if)")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis for the run (default REDIS_URL, or another db)")] = None,
    time_field: TimeFieldOption = "record",
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Re-run the stages over a range of their input topics into an isolated run (own topics and Redis names).

    A topic names the stages that replay it, and the run reads every topic those stages replay, with the same
    bounds: positions names the P&L stage, which reads positions, the price stage's marks and the daily closes.
    """
    from consumers.tools.replay import ReplayError, ReplayRequest, replay

    settings = _settings(needs=("KAFKA_BOOTSTRAP_SERVERS",) if redis_url else ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"))
    name = run_id or f"r{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
    first, *more = topics or [QUOTES_RAW.name]
    request = ReplayRequest(
        topic=first, start=_bound(from_offset, from_time, "from"), end=_bound(to_offset, to_time, "to"),
        run_id=name, symbols=_symbols(symbol), speed=speed, time_field=_time_field(time_field),
        max_quote_age_s=max_quote_age, more_topics=tuple(more),
    )
    bar = _RichProgress(errors) if progress else None

    async def main() -> int:
        try:
            run = await replay(settings, request, bar, redis_url)
        except (ReplayError, RangeError, ValueError) as exc:
            errors.print(f"[red]replay failed:[/red] {escape(str(exc))}")
            return 2
        finally:
            if bar is not None:
                bar.stop()
        out = Console(highlight=False, emoji=False, markup=False)
        accounts = f", {len(run.accounts)} account(s)" if run.accounts else ""
        out.print(f"run {run.run_id}: replayed {run.records_replayed} of {run.records_read} records of "
                  f"{', '.join(run.topics)} in {run.replay_seconds:.2f}s ({run.rate_per_second:,.0f} msg/s); "
                  f"accepted {run.accepted}, rejected {run.rejected}, {len(run.symbols)} symbols{accounts} "
                  f"(stages: {', '.join(run.stages)})", soft_wrap=True)  # one line each, for grep
        for span in run.partitions:
            where = f"{span.topic} partition" if span.topic else "partition"
            out.print(f"  {where} {span.partition}: offsets {span.start}..{span.end} "
                      f"(start: {span.start_how}, end: {span.end_how})", soft_wrap=True)
        for note in run.notes:
            out.print(f"  note: {note}")
        out.print(f"  redis: {run.namespace}*   topics: {', '.join(run.output_topics.values())}", soft_wrap=True)
        out.print(f"  compare: tickwire diff live {run.run_id}")
        return 0

    raise typer.Exit(_run(main()))


def diff_command(
    left: Annotated[str, typer.Argument(help="'live' or a run id")],
    right: Annotated[str, typer.Argument(help="a run id (or 'live')")],
    symbol: SymbolOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="'table' or 'json'")] = "table",
    redis_url: Annotated[str | None, typer.Option(help="Redis holding both (default REDIS_URL)")] = None,
    settle: Annotated[float, typer.Option(
        min=0, help="with live: seconds to compare again while live catches up to the run's cut")] = 5.0,
) -> None:
    """Compare two runs, or a run and live, symbol by symbol: latest price and counts.

    Exit 0: equal. Exit 1: a real difference. Exit 3 (with live): every differing symbol has records in the
    source topic past the run's cut, so live moved on; the report says by how many records.
    """
    from redis.asyncio import Redis

    from consumers.tools.diff import DiffError, diff
    from tickwire.kafka import aiokafka_security

    settings = _settings(needs=() if redis_url else ("REDIS_URL",))
    url = redis_url or settings.redis_url
    symbols = sorted(_symbols(symbol)) or None

    async def main() -> int:
        redis = Redis.from_url(url)
        try:
            report = await diff(redis, left, right, symbols, bootstrap=settings.kafka_bootstrap_servers,
                                settle_s=settle, **aiokafka_security(settings))
        except DiffError as exc:
            errors.print(f"[red]{escape(str(exc))}[/red]")
            return 2
        finally:
            await redis.aclose()
        if output == "json":
            print(orjson.dumps({
                "left": report.left.label, "right": report.right.label, "symbols": report.symbols,
                "positions": report.positions, "accounts": report.accounts,
                "differences": [d.__dict__ for d in report.differences],
                "live_moved": {s: {"records": m.records, "after_cut": _after_cut(m)}
                               for s, m in report.live_moved.items()},
            }).decode())
        else:
            _print_report(report)
        if not report.differences:
            return 0
        return 1 if report.real_differences else LIVE_MOVED_EXIT

    raise typer.Exit(_run(main()))


def _after_cut(move: Any) -> dict[str, dict[str, int]]:
    """A move's partitions past the cut: ``"P"`` in its first topic, ``"topic[P]"`` in others."""
    out = {str(p): {"cut": e, "records": n} for p, (e, n) in move.after_cut.items()}
    for topic, part in move.elsewhere.items():
        out.update({f"{topic}[{p}]": {"cut": e, "records": n} for p, (e, n) in part.items()})
    return out


def _compared(report: Any) -> str:
    """What a report compared: symbols, and positions in accounts (runs of the P&L stage)."""
    parts = []
    if report.symbols or not report.positions:
        parts.append(f"{len(report.symbols)} symbols ({', '.join(report.symbols)})")
    if report.positions or report.accounts:
        parts.append(f"{len(report.positions)} positions in {len(report.accounts)} account(s) "
                     f"({', '.join(report.positions)})")
    return " and ".join(parts)


def _print_report(report: Any) -> None:
    out = Console(highlight=False, emoji=False, markup=False)
    for s in (report.left, report.right):
        if s.run is not None:
            spans = " ".join(f"{p.topic}[{p.partition}]:{p.start}-{p.end}" if p.topic else
                             f"{p.partition}:{p.start}-{p.end}" for p in s.run.partitions)
            out.print(f"{s.label}: {', '.join(s.run.topics)} {spans}, {s.run.records_replayed} records, "
                      f"finished {s.run.finished_at}")
    if not report.differences:
        out.print(f"no differences in {_compared(report)}", soft_wrap=True)
        return
    compared = len(report.symbols) + len(report.positions) + len(report.accounts)
    noun = "symbols" if not (report.positions or report.accounts) else "symbols, positions and accounts"
    table = Table(title=f"{len(report.differing_symbols)} of {compared} {noun} differ")
    for header in ("symbol" if noun == "symbols" else "subject", "field", report.left.label, report.right.label):
        table.add_column(header, overflow="fold")
    for d in report.differences:
        table.add_row(d.symbol, d.field, d.left, d.right)
    out.print(table)
    for move in report.live_moved.values():
        out.print(str(move), soft_wrap=True)  # one line per symbol, for grep
    if report.live_moved and not report.real_differences:
        out.print(f"every difference is live having moved past the run's cut: no real difference (exit "
                  f"{LIVE_MOVED_EXIT})", soft_wrap=True)
    elif report.live_moved:
        real = sorted({d.symbol for d in report.real_differences})
        out.print(f"real differences in {len(real)} symbol(s): {', '.join(real)}", soft_wrap=True)


def register_tool_commands(app: typer.Typer) -> None:
    """Add ``tail``, ``replay`` and ``diff`` to the tickwire CLI."""
    from tickwire.cli_help import reads

    tools = reads("consumers.tools.settings:ToolSettings")
    app.command("tail", cls=tools)(tail_command)
    app.command("replay", cls=tools)(replay_command)
    app.command("diff", cls=tools)(diff_command)
