"""One error tree: tickwire's exception classes derive from TickwireError; only CLIs exit (issue 16)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import tomllib
from pathlib import Path

import pytest

from producers.alpaca_ingest import IngestService
from producers.settings import IngestSettings
from tickwire.errors import ConfigurationError, TickwireError

ROOT = Path(__file__).resolve().parents[2]
# Every shipped package, read from the layer contract's root packages (test_gate_coverage.py keeps that list whole).
PACKAGES = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"])
# The command-line modules: turning errors into exit codes is their job.
CLI_MODULES = {"deploy/cli.py", "tickwire/cli_errors.py", "alpaca_feed/cli.py", "consumers/tools/cli.py",
               "consumers/consistency_cli.py"}


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names += [package, *(m.name for m in pkgutil.walk_packages(root.__path__, package + "."))]
    return [name for name in names if not name.endswith("__main__")]


def test_every_exception_class_derives_from_the_root() -> None:
    outside = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, TickwireError):
                outside.append(f"{name}.{cls.__qualname__}")
    assert outside == []


def test_the_tree_in_the_docstring_names_every_error() -> None:
    tree = importlib.import_module("tickwire.errors").__doc__ or ""
    for name in _modules():
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if cls.__module__ == name and issubclass(cls, TickwireError):
                assert cls.__name__ in tree, f"{name}.{cls.__name__} is missing from tickwire/errors.py's tree"


def test_no_library_module_raises_system_exit() -> None:
    raising = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in CLI_MODULES or path.name == "__main__.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
                    raising.append(f"{relative}:{node.lineno}")
    assert raising == []


def test_an_ingest_without_kafka_raises_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        IngestService(IngestSettings(_env_file=None, kafka_bootstrap_servers=""))
