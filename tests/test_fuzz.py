"""The fuzz targets (``sentinel.fuzz``) and ``sentinel fuzz``: every seed holds its target's properties,
and a short run of each target (a fixed seed and number of runs, so the same inputs every time) finds no
crash. The long run is by command: ``sentinel fuzz TARGET --seconds 300``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.fuzz import TARGETS

SHORT_RUNS = 3_000


def sentinel_fuzz(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "fuzz", *arguments],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_seed_holds_the_properties(target: str) -> None:
    harness = importlib.import_module(TARGETS[target])
    seeds = harness.seeds()
    assert len(seeds) >= 3 and all(len(seed) <= harness.MAX_LEN for seed in seeds)
    for seed in seeds:
        harness.TestOneInput(seed)


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_short_fuzzing_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    result = sentinel_fuzz(target, "--runs", str(SHORT_RUNS), "--seed", "1", "--artifacts", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    assert f"sentinel fuzz {target}: {SHORT_RUNS} runs with seed 1" in result.stdout
    assert result.stdout.endswith("no crash\n")
    assert not list((tmp_path / target).iterdir())


@pytest.mark.slow
def test_inputs_given_as_files_are_replayed_and_a_kept_corpus_grows(tmp_path: Path) -> None:
    inputs = [tmp_path / "empty", tmp_path / "not-json"]
    inputs[0].write_bytes(b"")
    inputs[1].write_bytes(b"\x00{")
    replayed = sentinel_fuzz("ledger_record", *map(str, inputs), "--artifacts", str(tmp_path / "crashes"))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr[-5000:]
    assert "ledger_record: 2 input(s) replayed" in replayed.stdout

    corpus = tmp_path / "corpus"
    kept = sentinel_fuzz(
        "ledger_record", "--runs", "500", "--seed", "1", "--corpus", str(corpus), "--artifacts", str(tmp_path)
    )
    assert kept.returncode == 0, kept.stdout + kept.stderr[-5000:]
    seeds = importlib.import_module(TARGETS["ledger_record"]).seeds()
    assert len(list(corpus.iterdir())) > len(seeds)  # the seeds, and what the run found
    assert f"(kept in {corpus})" in kept.stdout
