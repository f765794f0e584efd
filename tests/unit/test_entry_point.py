"""``python -m tickwire`` runs the ``tickwire`` command without the tickwire package importing deploy (issue 27).

``tickwire/__main__.py`` finds the console script by name in the installed metadata; the processes
``tickwire run``, the tests and the bench start are ``python -m tickwire <component>``; the layer
contract (pyproject ``[tool.importlinter]``, no exception for it now) keeps deploy out of the package.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import deploy.cli
from tickwire.__main__ import command

ROOT = Path(__file__).resolve().parents[2]


def test_the_module_runs_the_console_script_pyproject_names() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command().value == scripts["tickwire"]
    assert command().load() is deploy.cli.main


def test_python_dash_m_tickwire_is_the_tickwire_command() -> None:
    result = subprocess.run([sys.executable, "-m", "tickwire", "--help"], capture_output=True, text=True,
                            timeout=60, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "tickwire" in result.stdout and "processor" in result.stdout

