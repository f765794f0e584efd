"""The stage registry is the one list of stages: the processor, its settings and the docs' topology follow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from processors.registry import STAGES, stage_names, topology_markdown
from processors.settings import ProcessorSettings
from processors.worker import build_processor, pipeline_topics

ROOT = Path(__file__).resolve().parents[2]


def test_architecture_doc_given_the_registry_holds_its_topology_between_the_markers() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    found = re.search(r"<!-- topology:start -->\n(.*?)<!-- topology:end -->", text, re.DOTALL)
    assert found is not None, "docs/architecture.md has no <!-- topology:start --> ... <!-- topology:end --> block"
    assert found.group(1) == topology_markdown(), (
        "docs/architecture.md's topology is stale: python tools/topology_doc.py")


def test_stages_setting_given_registry_names_accepts_them_and_refuses_others() -> None:
    assert set(ProcessorSettings(_env_file=None).stages) <= set(stage_names())
    assert ProcessorSettings(TICKWIRE_PROCESSOR_STAGES=" PNL, price,pnl ").stages == ("pnl", "price")
    with pytest.raises(ValidationError, match=r"unknown stage.*'quotes'.*the stages are price, pnl"):
        ProcessorSettings(TICKWIRE_PROCESSOR_STAGES="price,quotes")


async def test_build_processor_given_stages_runs_each_in_its_declared_group_over_its_declared_inputs() -> None:
    settings = ProcessorSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", TICKWIRE_PROCESSOR_APP_ID="app",
                                 TICKWIRE_MARK_POLICY="last")
    process = build_processor(settings)
    try:
        assert [m.name for m in process.members] == list(settings.stages)
        for member, spec in zip(process.members, STAGES, strict=False):
            assert member.group == spec.group("app")
            assert member.batch.topics == list(spec.inputs(settings))
            assert member.sidecars
        assert process.members[0].batch.topics == ["quotes.raw", "trades.raw"]
        names = {t.name for t in pipeline_topics("app")}
        assert {changelog.name for spec in STAGES for changelog in spec.changelogs("app")} <= names
    finally:
        for member in process.members:
            await member.batch.consumer.stop()
        for close in process.closing:
            await close()
