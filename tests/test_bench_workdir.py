"""A benchmark's work files go when the run found nothing to look into, and stay when asked or when it did."""

from __future__ import annotations

import argparse

from sentinel.bench.options import add_output_options
from sentinel.bench.workdir import finish_work_directory, new_work_directory


def test_work_files_are_removed_unless_kept() -> None:
    removed, kept = new_work_directory("sentinel-test-"), new_work_directory("sentinel-test-")
    for workdir in (removed, kept):
        (workdir / "data").mkdir()
        (workdir / "data" / "wal").write_bytes(b"x" * 1024)
    assert finish_work_directory(removed, keep=False) == "work files: removed (--keep-work keeps them)"
    assert not removed.exists()
    assert finish_work_directory(kept, keep=True) == f"work files: {kept}"
    assert (kept / "data" / "wal").exists()
    finish_work_directory(kept, keep=False)
    assert not kept.exists()


def test_the_option_defaults_to_removing() -> None:
    parser = argparse.ArgumentParser()
    add_output_options(parser)
    assert parser.parse_args([]).keep_work is False
    assert parser.parse_args(["--keep-work"]).keep_work is True
