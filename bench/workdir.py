"""Where a benchmark run keeps its files (payloads, load-generator reports, the private Redis and
PostgreSQL): a fresh directory under the system's temporary directory, removed at the end of a run that
found nothing to look into.

A run writes a gigabyte or more (mostly PostgreSQL's WAL for hundreds of thousands of decisions). Kept
after every run, these directories filled this machine's disk in one day of benchmarking. A run that
reports a problem keeps its files, and ``--keep-work`` keeps them whatever happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def new_work_directory(prefix: str) -> Path:
    """A fresh directory for one run, readable by the private PostgreSQL's user (it lives below)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(workdir, 0o755)
    return workdir


def finish_work_directory(workdir: Path, *, keep: bool) -> str:
    """Remove ``workdir`` unless ``keep``; the line saying where the files are, or that they are gone."""
    if keep:
        return f"work files: {workdir}"
    shutil.rmtree(workdir, ignore_errors=True)
    return "work files: removed (--keep-work keeps them)"
