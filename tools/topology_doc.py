"""Writes the stage topology into docs/architecture.md from the stage registry (``python tools/topology_doc.py``).

The registry (``processors/registry.py``) is the one place a stage is declared; the table between
``<!-- topology:start -->`` and ``<!-- topology:end -->`` is its ``topology_markdown()``, and a unit test
(``tests/unit/test_stage_registry.py``) keeps the two equal. ``--check`` only says whether the page is current.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
BLOCK = re.compile(r"(<!-- topology:start -->\n)(.*?)(<!-- topology:end -->)", re.DOTALL)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from processors.registry import topology_markdown

    text = PAGE.read_text()
    if BLOCK.search(text) is None:
        print(f"{PAGE.relative_to(ROOT)} has no topology markers", file=sys.stderr)
        return 2
    updated = BLOCK.sub(lambda m: m.group(1) + topology_markdown() + m.group(3), text, count=1)
    if "--check" in argv:
        return 0 if updated == text else 1
    PAGE.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
