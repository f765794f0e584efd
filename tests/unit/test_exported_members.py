"""``__all__`` is whole on the modules downstream services import (issue 27), as httpx's exported-members test.

Every ``schemas/`` module and the client library (``consumers/client.py``): every public name the module
defines (top-level, not imported, not starting with ``_``) is in ``__all__``, every name in ``__all__``
exists, and ``__all__`` is in ruff's isort-style order (RUF022: CONSTANTS, then Classes, then functions).
A module may also re-export names it imports (``schemas.topics`` re-exports some event models).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import schemas

MODULES = sorted([*(m.name for m in pkgutil.walk_packages(schemas.__path__, "schemas.") if not m.ispkg),
                  "consumers.client"])
# Defined at the top level but not API: the module's logger, the type variable its Callback alias takes and the
# one its stream parser takes.
NOT_EXPORTED = {"consumers.client": {"log", "E", "M"}}


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The module's statements, including those inside top-level if/try/with blocks (not inside defs)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try | ast.With):
            for block in (getattr(node, field, []) for field in ("body", "orelse", "finalbody")):
                yield from _top_level(block)
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)


def _defined(module: ModuleType) -> set[str]:
    """Names the module's own source binds at the top level (imports left out)."""
    names: set[str] = set()
    for node in _top_level(ast.parse(Path(module.__file__ or "").read_text()).body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names - {"__all__"}


def _public(module: ModuleType) -> set[str]:
    return {name for name in _defined(module) if not name.startswith("_")} - NOT_EXPORTED.get(module.__name__, set())


def _isort_style(name: str) -> tuple[int, list[int | str]]:
    """Ruff's RUF022 order: SCREAMING_SNAKE_CASE, then CamelCase, then the rest; each in natural order."""
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    return kind, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@pytest.fixture(params=MODULES)
def module(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def test_every_public_name_is_exported(module: ModuleType) -> None:
    assert sorted(_public(module) - set(module.__all__)) == []


def test_every_exported_name_exists_once(module: ModuleType) -> None:
    assert [name for name in module.__all__ if not hasattr(module, name)] == []
    assert len(set(module.__all__)) == len(module.__all__)


def test_all_is_sorted(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__, key=_isort_style)


def test_the_names_kept_out_are_still_defined() -> None:
    """An exception outlives its reason when the name is renamed private or removed: then drop it here."""
    for name, kept_out in NOT_EXPORTED.items():
        assert kept_out <= _defined(importlib.import_module(name))


def test_the_helper_sees_only_definitions() -> None:
    """Imports are not definitions: schemas.topics imports the event models and does not define them."""
    topics = importlib.import_module("schemas.topics")
    assert "TopicSpec" in _defined(topics)
    assert "PriceSnapshot" not in _defined(topics)
    assert "price_key" in _defined(topics)
