"""The gates see every shipped package (issue 27): mypy's file list and the layer contract's root packages.

A package left out of a gate passes it unchecked; these tests fail when a shipped package (pyproject
``[tool.setuptools.packages.find] include``) is missing from one.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _shipped() -> set[str]:
    return {name.rstrip("*") for name in _config()["tool"]["setuptools"]["packages"]["find"]["include"]}


def test_mypy_checks_every_shipped_package() -> None:
    assert _shipped() - set(_config()["tool"]["mypy"]["files"]) == set()


def test_the_layer_contract_names_every_shipped_package() -> None:
    assert set(_config()["tool"]["importlinter"]["root_packages"]) == _shipped()
