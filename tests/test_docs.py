"""The README and the example configuration stay true to the code."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from sentinel.config import Settings
from sentinel.serverprocess import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"| `{name}` |" not in readme]
    assert missing == [], f"settings missing from the README's configuration reference: {missing}"


def test_example_configuration_is_valid() -> None:
    values = tomllib.loads((ROOT / "deploy" / "sentinel.example.toml").read_text())
    Settings(**values)


def test_readme_python_example_runs_twice(server: ServerProcess) -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[
        readme.index("## Quick start") : readme.index("\n## ", readme.index("## Quick start") + 1)
    ]
    (example,) = re.findall(r"```python\n(.*?)```", quick_start, re.S)
    assert "127.0.0.1:50051" in example and ".venv/bin/python" in readme
    script = example.replace("127.0.0.1:50051", server.address)
    for _ in range(2):  # a fresh transaction id per run: no ALREADY_EXISTS on the second
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split()[0] in {"APPROVE", "REVIEW", "DECLINE"}, run.stdout
