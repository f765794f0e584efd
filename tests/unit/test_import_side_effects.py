"""Importing any tickwire module opens no socket and needs no environment (issue 16).

Each module is imported in one fresh interpreter whose environment is empty (no KAFKA_*, REDIS_*,
TICKWIRE_* nor ALPACA_* variables) and whose socket connect/bind raise: a module that builds a client,
loads settings that require a server, or serves anything at import fails here with its error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tickwire", "schemas", "domain", "producers", "processors", "consumers", "alpaca_feed", "deploy")

# Runs in the clean interpreter: import every module, report {module: error} as JSON on the last line.
PROBE = r"""
import importlib, json, pkgutil, socket, sys, traceback

class SocketOpened(Exception):
    pass

def refuse(self, *args, **kwargs):
    raise SocketOpened(f"socket {getattr(self, 'family', '?')} opened at import: {args!r}")

for name in ("connect", "connect_ex", "bind", "sendto"):
    setattr(socket.socket, name, refuse)

failures = {}
packages = sys.argv[1:]
modules = []
for package in packages:
    root = importlib.import_module(package)
    modules.append(package)
    modules += [m.name for m in pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda n: None)]
for module in modules:
    if module.rsplit(".", 1)[-1] == "__main__":
        continue  # an entry point runs its program when imported: that is its job
    try:
        importlib.import_module(module)
    except BaseException as exc:
        failures[module] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
print(json.dumps({"modules": modules, "failures": failures}))
"""


def run_probe(packages: tuple[str, ...], env: dict[str, str], cwd: Path = ROOT) -> Any:
    """Import every module of ``packages`` in a fresh interpreter with exactly ``env``."""
    result = subprocess.run([sys.executable, "-c", PROBE, *packages], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def probe() -> Any:
    """The clean-interpreter import of every module: which were tried and which failed, with why."""
    return run_probe(PACKAGES, env={})


def test_the_probe_catches_a_module_that_connects_at_import(tmp_path: Path) -> None:
    package = tmp_path / "noisy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "client.py").write_text("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n")
    (package / "quiet.py").write_text("VALUE = 1\n")
    failures = run_probe(("noisy",), env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path)["failures"]
    assert list(failures) == ["noisy.client"]
    assert "SocketOpened" in failures["noisy.client"]


def test_every_module_imports_without_environment_or_sockets(probe: Any) -> None:
    failures: dict[str, str] = probe["failures"]
    assert not failures, "modules with import-time side effects:\n" + "\n".join(
        f"  {m}: {why}" for m, why in sorted(failures.items()))


def test_the_probe_walked_every_package(probe: Any) -> None:
    modules = set(probe["modules"])
    assert set(PACKAGES) <= modules
    assert {"producers.alpaca_ingest", "deploy.cli", "consumers.api.app", "alpaca_feed.server"} <= modules
