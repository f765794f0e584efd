"""docs/decisions/: numbered records, each listed in the index, with its four parts; the README links the index."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ROOT / "docs" / "decisions"
RECORDS = sorted(DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md"))


def test_records_are_numbered_in_order_from_one() -> None:
    assert [int(path.name[:4]) for path in RECORDS] == list(range(1, len(RECORDS) + 1))


def test_every_record_has_its_four_parts_and_stays_short() -> None:
    for path in RECORDS:
        text = path.read_text()
        assert text.startswith(f"# {path.name[:4]}. "), path.name
        headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
        assert headings == ["Context", "Decision", "Measured reason", "Consequences"], path.name
        assert 20 <= len(text.splitlines()) <= 60, path.name


def test_the_index_lists_every_record_and_the_readme_links_the_index() -> None:
    index = (DECISIONS / "README.md").read_text()
    assert set(re.findall(r"\]\((\d{4}-[^)]+\.md)\)", index)) == {path.name for path in RECORDS}
    assert "](docs/decisions/README.md)" in (ROOT / "README.md").read_text()
