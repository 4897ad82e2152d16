"""The README and the example configuration stay true to the code."""

from __future__ import annotations

import tomllib
from pathlib import Path

from sentinel.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"| `{name}` |" not in readme]
    assert missing == [], f"settings missing from the README's configuration reference: {missing}"


def test_example_configuration_is_valid() -> None:
    values = tomllib.loads((ROOT / "deploy" / "sentinel.example.toml").read_text())
    Settings(**values)
