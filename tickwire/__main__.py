"""``python -m tickwire`` = the ``tickwire`` command.

The command is the console script pyproject's ``[project.scripts]`` names (``deploy.cli:main``), found in
the installed distribution's metadata as the ``tickwire`` executable finds it. The entry point sits above
every layer; looked up by name, it leaves the ``tickwire`` package (a low layer) importing nothing of
``deploy`` (pyproject ``[tool.importlinter]``).
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution


def command() -> EntryPoint:
    """The ``tickwire`` console script of the installed tickwire distribution."""
    (script,) = distribution("tickwire").entry_points.select(group="console_scripts", name="tickwire")
    return script


if __name__ == "__main__":
    try:
        main = command().load()
    except PackageNotFoundError:
        sys.exit("python -m tickwire: tickwire is not installed (make .venv/.installed, or pip install -e .)")
    main()
