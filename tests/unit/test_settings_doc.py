"""docs/settings.md is what the settings classes say (regenerate: python tools/settings_doc.py > docs/settings.md)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_settings_page_given_the_settings_classes_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("settings_doc", ROOT / "tools" / "settings_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert (ROOT / "docs" / "settings.md").read_text() == module.render(), (
        "docs/settings.md is stale: python tools/settings_doc.py > docs/settings.md")
