"""The stage registry: every stage the processors run, declared once.

An entry says what a stage is: its name, the topics it reads and writes, its state (tables, with the changelog
a takeover restores them from), the Redis names it projects to, its pure handler (``domain/``) and its I/O
side (a :class:`~tickwire.runtime.stage.StageBase`), and what a replay of it reads and writes. Everything else
is derived from this list: ``tickwire processor`` builds the stages ``TICKWIRE_PROCESSOR_STAGES`` names from it
(``processors/worker.py``), the settings accept exactly its names, ``tickwire replay`` finds which stage
replays a topic here and runs it (``processors/stage_replay.py``), and the topology table in
``docs/architecture.md`` is :func:`topology_markdown` (a unit test keeps the two equal).

A new stage is one module (its pure handler and its I/O side) and one entry in :data:`STAGES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args

from redis.asyncio import Redis

from domain.price_handler import newer_price
from domain.valuation import MarkPolicy
from processors.metrics import ProcessorMetrics
from processors.pnl_stage import PnLStage, pnl_handler
from processors.price_stage import PriceStage, price_handler
from schemas.topics import (
    ACCOUNTS_KEY,
    DAILY_BARS_RAW,
    LATEST_PRICE_TABLE,
    LIVE_NAMESPACE,
    MARKS_TABLE,
    PNL,
    POSITIONS,
    POSITIONS_BY_SYMBOL,
    POSITIONS_REJECTED,
    POSITIONS_TABLE,
    PRICE_STREAMS_KEY,
    PRICES,
    PROCESSOR_STATS_KEY,
    QUOTES_RAW,
    QUOTES_REJECTED,
    SUBSCRIPTIONS,
    TRADES_RAW,
    TopicSpec,
    close_key,
    last_trade_key,
    latest_price_changelog,
    marks_topic,
    pnl_channel,
    pnl_key,
    pnl_stream,
    pnl_total_key,
    positions_key,
    price_channel,
    price_key,
    price_stream,
    progress_key,
    symbol_stats_key,
)
from tickwire.runtime.outputs import Outputs
from tickwire.runtime.stage import StageBase
from tickwire.runtime.table import ChangelogTable, Json

if TYPE_CHECKING:
    from processors.settings import ProcessorSettings

H = TypeVar("H")
APP_ID = "{app_id}"  # how the topology names topics that carry TICKWIRE_PROCESSOR_APP_ID


@dataclass(frozen=True)
class TableSpec:
    """A stage's state table: what it maps, and how a member taking a partition over gets it back."""

    name: str
    key: str
    value: str
    changelog: Callable[[str], str] | None = None  # app id -> its compacted changelog; None: rebuilt from inputs
    restored_from: tuple[str, ...] = ()  # the topics it is rebuilt from when it has no changelog (the topology)
    newer: Callable[[Json, Json | None], bool] | None = None  # which restored value wins (None: the restored one)


@dataclass(frozen=True)
class ReplaySpec:
    """What ``tickwire replay`` of a stage reads, and which of its outputs a run keeps (under its own names)."""

    topics: Callable[[str], tuple[str, ...]]  # app id -> the topics a run of this stage reads, in this order
    outputs: tuple[str, ...]  # live topics the run writes as ``{topic}.replay.{run}``; anything else is dropped
    accepted: str  # the output counted as accepted in the run's manifest
    rejected: str  # the output counted as rejected


@dataclass(frozen=True)
class StageContext:
    """What a stage is built with: settings, clients, metrics, its tables, and where it writes."""

    settings: ProcessorSettings
    redis: Redis
    outputs: Outputs
    metrics: ProcessorMetrics
    tables: Mapping[str, ChangelogTable] = field(default_factory=dict)
    namespace: str = LIVE_NAMESPACE  # Redis names' prefix: a replay run's, or none
    replay: bool = False  # built by ``tickwire replay``: no consumer group, no timers, the run's settings


@dataclass(frozen=True)
class StageSpec(Generic[H]):
    """One stage, declared: the rest of the processors, the replay tool and the docs read it from here."""

    name: str
    summary: str
    group: Callable[[str], str]  # app id -> consumer group
    inputs: Callable[[ProcessorSettings], tuple[str, ...]]
    outputs: Callable[[str], tuple[str, ...]]  # app id -> topics written
    redis: tuple[str, ...]  # Redis names projected to (for the topology)
    tables: tuple[TableSpec, ...]
    handler: Callable[[StageContext], H]  # the pure handler (domain/), made for a context
    stage: Callable[[StageContext, H], StageBase]  # the I/O side driving it
    fetch_wait_s: Callable[[ProcessorSettings], float] = lambda settings: settings.fetch_wait_s
    replay: ReplaySpec | None = None

    def build(self, ctx: StageContext) -> StageBase:
        """The stage's I/O side over a fresh pure handler; ``ctx``'s tables are made here if it has none."""
        if not ctx.tables and self.tables:
            app_id = ctx.settings.processor_app_id
            tables = {t.name: ChangelogTable(t.changelog(app_id), t.newer) for t in self.tables if t.changelog}
            ctx = replace(ctx, tables=tables)
        return self.stage(ctx, self.handler(ctx))

    def changelogs(self, app_id: str) -> list[TopicSpec]:
        """The compacted changelog topics of the stage's tables (created with the pipeline's topics)."""
        return [TopicSpec(t.changelog(app_id), t.key, bytes, f"Internal: the {self.name} stage's {t.name}",
                          compacted=True) for t in self.tables if t.changelog]


def _price_inputs(settings: ProcessorSettings) -> tuple[str, ...]:
    return (QUOTES_RAW.name, *((TRADES_RAW.name,) if settings.mark_policy == "last" else ()))


STAGES: tuple[StageSpec[Any], ...] = (
    StageSpec(
        name="price",
        summary="validate and price quotes; each symbol's latest price never moves back; marks for P&L",
        group=lambda app_id: app_id,
        inputs=_price_inputs,
        outputs=lambda app_id: (PRICES.name, QUOTES_REJECTED.name, marks_topic(app_id)),
        redis=(price_key("{SYMBOL}"), price_channel("{SYMBOL}"), price_stream("{SYMBOL}"), PRICE_STREAMS_KEY,
               symbol_stats_key("{SYMBOL}"), PROCESSOR_STATS_KEY, progress_key(APP_ID, QUOTES_RAW.name)),
        tables=(TableSpec(LATEST_PRICE_TABLE, "symbol", "PriceEvent", changelog=latest_price_changelog,
                          newer=newer_price),),
        handler=price_handler,
        stage=PriceStage,
        replay=ReplaySpec(topics=lambda app_id: (QUOTES_RAW.name,), outputs=(PRICES.name, QUOTES_REJECTED.name),
                          accepted=PRICES.name, rejected=QUOTES_REJECTED.name),
    ),
    StageSpec(
        name="pnl",
        summary="value positions at every mark or position change; keep their symbols subscribed",
        group=lambda app_id: f"{app_id}-pnl",
        inputs=lambda settings: (POSITIONS.name, POSITIONS_BY_SYMBOL.name, marks_topic(settings.processor_app_id),
                                 DAILY_BARS_RAW.name),
        outputs=lambda app_id: (POSITIONS_BY_SYMBOL.name, PNL.name, POSITIONS_REJECTED.name, SUBSCRIPTIONS.name),
        redis=(pnl_key("{account}"), pnl_total_key("{account}"), pnl_channel("{account}"), pnl_stream("{account}"),
               positions_key("{account}"), ACCOUNTS_KEY, close_key("{SYMBOL}"), last_trade_key("{SYMBOL}")),
        tables=(
            TableSpec(POSITIONS_TABLE, "symbol", "{account: Position}", restored_from=(POSITIONS_BY_SYMBOL.name,)),
            TableSpec(MARKS_TABLE, "symbol", "{price, trade, close}",
                      restored_from=(latest_price_changelog(APP_ID), marks_topic(APP_ID), DAILY_BARS_RAW.name)),
        ),
        handler=pnl_handler,
        stage=PnLStage,
        fetch_wait_s=lambda settings: settings.pnl_fetch_wait_s,
        replay=ReplaySpec(topics=lambda app_id: (POSITIONS.name, marks_topic(app_id), DAILY_BARS_RAW.name),
                          outputs=(PNL.name, POSITIONS_REJECTED.name), accepted=PNL.name,
                          rejected=POSITIONS_REJECTED.name),
    ),
)


def stage_names() -> tuple[str, ...]:
    """Every registered stage, in registry order."""
    return tuple(spec.name for spec in STAGES)


def stage(name: str) -> StageSpec[Any]:
    """The stage called ``name`` (KeyError if none is)."""
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def selected(names: Iterable[str]) -> list[StageSpec[Any]]:
    """The stages ``names`` name, in registry order."""
    wanted = set(names)
    return [spec for spec in STAGES if spec.name in wanted]


def replayed_by(app_id: str) -> dict[str, list[StageSpec[Any]]]:
    """topic -> the stages whose replay reads it."""
    out: dict[str, list[StageSpec[Any]]] = {}
    for spec in STAGES:
        if spec.replay is not None:
            for topic in spec.replay.topics(app_id):
                out.setdefault(topic, []).append(spec)
    return out


def topology_markdown() -> str:
    """The registry as a Markdown table (``docs/architecture.md`` holds it between its topology markers)."""
    from processors.settings import ProcessorSettings

    # Topic names that carry the app id are shown with {app_id}; inputs under the default mark policy, and what
    # another policy adds.
    by_policy = {policy: ProcessorSettings.model_construct(processor_app_id=APP_ID, mark_policy=policy)
                 for policy in get_args(MarkPolicy)}
    default = by_policy[ProcessorSettings.model_fields["mark_policy"].default]
    rows = ["| Stage | Consumer group | Reads | Writes | State (a takeover restores it from) | Redis | "
            "`tickwire replay` reads → writes |",
            "|---|---|---|---|---|---|---|"]
    for spec in STAGES:
        tables = "; ".join(
            f"`{t.name}` ({t.key} → {t.value}) from "
            + ", ".join(f"`{topic}`" for topic in ((t.changelog(APP_ID),) if t.changelog else t.restored_from))
            for t in spec.tables) or "none"
        replay = ("none" if spec.replay is None else
                  ", ".join(f"`{t}`" for t in spec.replay.topics(APP_ID))
                  + " → " + ", ".join(f"`{t}.replay.{{run}}`" for t in spec.replay.outputs))
        inputs = ", ".join(f"`{t}`" for t in spec.inputs(default))
        for policy, settings in by_policy.items():
            extra = [t for t in spec.inputs(settings) if t not in spec.inputs(default)]
            if extra:
                inputs += f" (+ {', '.join(f'`{t}`' for t in extra)} under mark policy `{policy}`)"
        rows.append(" | ".join([
            f"| **{spec.name}**: {spec.summary}", f"`{spec.group(APP_ID)}`", inputs,
            ", ".join(f"`{t}`" for t in spec.outputs(APP_ID)) or "none", tables,
            ", ".join(f"`{name}`" for name in spec.redis) or "none", replay + " |"]))
    return "\n".join(rows) + "\n"
