"""The layer rule (pyproject ``[tool.importlinter]``) holds: no import points up or across services.

The layers and the ignored imports are read from pyproject, so this test and ``lint-imports`` in
``make test`` judge one contract. grimp builds the graph of the real tree.
"""

from __future__ import annotations

import fnmatch
import graphlib
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _contract() -> tuple[list[str], dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return config["root_packages"], layers


def _layers(contract: dict[str, Any]) -> list[grimp.Layer]:
    """``"a | b"`` is a rung of independent siblings, as import-linter reads it."""
    return [grimp.Layer(*(name.strip() for name in rung.split("|")), independent=True)
            for rung in contract["layers"]]


def _ignore(graph: grimp.ImportGraph, patterns: list[str]) -> None:
    for pattern in patterns:
        importer, imported = (side.strip() for side in pattern.split("->"))
        for module in fnmatch.filter(graph.modules, importer):
            for target in list(graph.find_modules_directly_imported_by(module)):
                if fnmatch.fnmatch(target, imported):
                    graph.remove_import(importer=module, imported=target)


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return _contract()[1]


@pytest.fixture
def graph(contract: dict[str, Any]) -> grimp.ImportGraph:
    """The import graph of the tree, less the contract's documented exceptions."""
    sys.path.insert(0, str(ROOT))
    built = grimp.build_graph(*_contract()[0], cache_dir=None)
    _ignore(built, contract["ignore_imports"])
    return built


def _violations(graph: grimp.ImportGraph, contract: dict[str, Any]) -> list[str]:
    """One line per illegal route: ``layer -> layer: first module -> ... -> last module``."""
    return sorted(f"{d.importer} -> {d.imported}: " + " -> ".join([min(r.heads), *r.middle, min(r.tails)])
                  for d in graph.find_illegal_dependencies_for_layers(_layers(contract)) for r in d.routes)


def test_no_import_points_up_or_across(graph: grimp.ImportGraph, contract: dict[str, Any]) -> None:
    assert _violations(graph, contract) == []


def test_the_rule_bites_on_an_upward_import(graph: grimp.ImportGraph, contract: dict[str, Any]) -> None:
    graph.add_import(importer="schemas.events", imported="deploy.cli")
    assert _violations(graph, contract)


def test_the_local_feed_is_independent_of_the_services(graph: grimp.ImportGraph, contract: dict[str, Any]) -> None:
    graph.add_import(importer="alpaca_feed.cli", imported="producers.settings")
    assert any(v.startswith("alpaca_feed -> producers") for v in _violations(graph, contract))


def test_the_documented_exceptions_are_the_only_breaches(contract: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    raw = grimp.build_graph(*_contract()[0], cache_dir=None)  # no import ignored
    breaches = _violations(raw, contract)
    assert breaches and all("consumers.tools.replay_handlers -> processors." in line for line in breaches), breaches


# The settings check stage names against the registry, whose stages take the settings: a lazy import, on purpose.
ALLOWED_CYCLE_EDGES = {("processors.settings", "processors.registry")}


def _module_cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One import cycle between modules (leaving out ``ALLOWED_CYCLE_EDGES``), or None."""
    deps = {m: {d for d in graph.find_modules_directly_imported_by(m) if (m, d) not in ALLOWED_CYCLE_EDGES}
            for m in graph.modules}
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_module_import_cycle() -> None:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*_contract()[0], cache_dir=None, exclude_type_checking_imports=True)
    assert _module_cycle(graph) is None
    graph.add_import(importer="schemas.symbols", imported="schemas.events")
    graph.add_import(importer="schemas.events", imported="schemas.symbols")
    assert _module_cycle(graph) is not None  # the check sees one when there is one
