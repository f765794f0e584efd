"""The README is a short, jargon-free entry point whose links resolve (issue 15 item 11)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_given_a_new_user_starts_with_the_two_commands_and_the_install_time() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start
    assert "1-2 minutes" in quick_start


def test_readme_given_stale_or_internal_wording_has_none() -> None:
    assert "seeds" not in README.lower()
    assert not re.search(r"\b(20|50) ms batch|BATCH_WINDOW", README)
    assert "tansu" not in README.lower() and "kcat ARGS" not in README


def test_readme_given_its_links_to_docs_every_one_exists() -> None:
    links = set(re.findall(r"\]\((docs/[^)#]+)", README))
    assert {"docs/embedded-broker.md", "docs/architecture.md", "docs/settings.md", "docs/api.md"} <= links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_readme_given_the_embedded_broker_says_where_its_data_lives_and_how_to_use_redpanda_instead() -> None:
    assert ".tickwire/kafka" in README and "--fresh" in README
    assert "KAFKA_BOOTSTRAP_SERVERS=" in README and "docker compose up" in README


def test_embedded_broker_doc_given_the_lead_fills_it_has_costs_retention_and_kcat() -> None:
    doc = (ROOT / "docs" / "embedded-broker.md").read_text()
    for section in ("## What it costs", "## Retention and compaction", "## kcat", "## One-hour run"):
        assert section in doc
    assert "kcat -b" in doc
