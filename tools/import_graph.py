"""Print tickwire's package-level import graph and any cycles (``python tools/import_graph.py``).

Built with grimp (the graph library behind import-linter): one line per "package -> package" edge with
the number of module-level imports behind it, then the import cycles between top-level packages, then
the modules behind each edge that points upwards (against the layer rule in pyproject's
``[tool.importlinter]``). Run it before and after a change to see what moved.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tomllib
from collections import Counter
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tickwire", "schemas", "domain", "producers", "processors", "consumers", "alpaca_feed", "deploy")
# Bottom to top: an import may point down (or sideways within a rung) only.
RUNGS = (("schemas",), ("domain",), ("tickwire",), ("producers", "processors", "consumers", "alpaca_feed"),
         ("deploy",))
RUNG = {package: level for level, rung in enumerate(RUNGS) for package in rung}


def allowed_exceptions(root: Path) -> list[tuple[str, str]]:
    """The contract's documented exceptions (``ignore_imports`` in pyproject), as (importer, imported) globs."""
    path = root / "pyproject.toml"
    config = tomllib.loads(path.read_text()).get("tool", {}).get("importlinter", {}) if path.is_file() else {}
    patterns = [p for c in config.get("contracts", []) for p in c.get("ignore_imports", [])]
    pairs = [[side.strip() for side in p.split("->")] for p in patterns]
    return [(importer, imported) for importer, imported in pairs]


def is_allowed(module: str, imported: str, allowed: list[tuple[str, str]]) -> bool:
    """Whether ``module -> imported`` is one of the documented exceptions."""
    return any(fnmatch.fnmatch(module, a) and fnmatch.fnmatch(imported, b) for a, b in allowed)


def package_edges(graph: grimp.ImportGraph, allowed: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Counts of module imports between different top-level packages (documented exceptions left out)."""
    edges: Counter[tuple[str, str]] = Counter()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if is_allowed(module, imported, allowed):
                continue
            source, target = module.split(".")[0], imported.split(".")[0]
            if source != target:
                edges[source, target] += 1
    return edges


def cycles(edges: Counter[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs of packages that import each other directly."""
    return sorted((a, b) for (a, b) in edges if a < b and (b, a) in edges)


def upward_imports(graph: grimp.ImportGraph, allowed: list[tuple[str, str]]) -> list[str]:
    """``importer -> imported`` for each import from a lower rung to a higher one, or between the
    independent packages of one rung (alpaca_feed and the three services)."""
    found = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            source, target = module.split(".")[0], imported.split(".")[0]
            if source == target or is_allowed(module, imported, allowed):
                continue
            if RUNG[source] < RUNG[target] or (RUNG[source] == RUNG[target] == 3):
                found.append(f"{module} -> {imported}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the graph; exit 0 (it reports, the layer test judges)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="also list each upward module import")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="another checkout to draw (e.g. `git archive REV | tar -x -C DIR`); default: this one")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root.resolve()))
    present = [p for p in PACKAGES if (args.root / p / "__init__.py").is_file()]  # older trees lack some
    graph = grimp.build_graph(*present, cache_dir=None)
    allowed = allowed_exceptions(args.root)
    edges = package_edges(graph, allowed)
    print(f"{len(graph.modules)} modules; package imports (count of module imports):")
    for (source, target), count in sorted(edges.items(), key=lambda e: (-RUNG[e[0][0]], e[0])):
        marker = "  UPWARD" if RUNG[source] < RUNG[target] or RUNG[source] == RUNG[target] == 3 else ""
        print(f"  {source:<11} -> {target:<11} {count:>3}{marker}")
    pairs = cycles(edges)
    print("package cycles: " + (", ".join(f"{a} <-> {b}" for a, b in pairs) if pairs else "none"))
    upward = upward_imports(graph, allowed)
    print(f"imports against the layers: {len(upward)}")
    if args.details:
        for line in upward:
            print(f"  {line}")
    exceptions = sorted(f"{m} -> {i}" for m in graph.modules for i in graph.find_modules_directly_imported_by(m)
                        if is_allowed(m, i, allowed))
    print(f"documented exceptions (pyproject ignore_imports), not counted above: {len(exceptions)}")
    for line in exceptions if args.details else ():
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
