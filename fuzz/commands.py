"""``sentinel fuzz TARGET``: fuzz one target with atheris, or replay inputs (a crash file) through it.

The targets: ``request_decoder`` (scoring request bytes through the compiled decoder, against the
Python validation), ``rule_parser`` (rule expressions and rule files through the language, the compiler
and both evaluators), ``ledger_record`` (the spool's record and segment codec, replayed into the
ledger). Each run starts from the target's seeds (valid inputs built in code) plus the corpus kept in
--corpus, stops after --seconds or --runs, or at the first crash, whose input is written to
--artifacts/TARGET/crash-<sha1>; the exit status is 0 only when nothing crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from sentinel.fuzz import TARGETS

DEFAULT_SECONDS = 60
TIMEOUT_S = 10  # an input that runs longer is a crash too (libFuzzer's -timeout)
_NOISE = ("INFO: Instrumenting ", 'WARNING: Failed to find function "__sanitizer')
_SEED = re.compile(r"INFO: Seed: (\d+)")
_RUNS = re.compile(r"stat::number_of_executed_units: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


class FuzzRun(NamedTuple):
    """What one libFuzzer process reported."""

    returncode: int
    seed: int | None
    runs: int | None
    artifacts: list[str]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: Any) -> None:
    """Add ``sentinel fuzz``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fuzz",
        help="fuzz a decoder or parser with atheris (make test runs each target briefly)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument(
        "inputs", nargs="*", type=Path, metavar="FILE", help="run these inputs once instead of fuzzing"
    )
    parser.add_argument(
        "--seconds", type=_positive, help=f"stop after this long (default {DEFAULT_SECONDS} without --runs)"
    )
    parser.add_argument("--runs", type=_positive, help="stop after this many inputs")
    parser.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        help="keep the inputs that found new coverage in DIR, for the next run (default: a temporary "
        "directory, the run starts from the seeds alone)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path(".sentinel/fuzz"),
        metavar="DIR",
        help="crash files go to DIR/TARGET/ (default .sentinel/fuzz)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="libFuzzer's random seed; 0 (default) draws a new one"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    harness = importlib.import_module(TARGETS[args.target])
    artifacts = args.artifacts / args.target
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"sentinel-fuzz-{args.target}-") as scratch:
        dictionary = Path(scratch) / "dictionary"
        dictionary.write_text("".join(f"{_dictionary_entry(token)}\n" for token in harness.DICTIONARY))
        flags = [
            f"-max_len={harness.MAX_LEN}",
            f"-timeout={TIMEOUT_S}",
            f"-seed={args.seed}",
            f"-dict={dictionary}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
        ]
        started = time.monotonic()
        if args.inputs:
            run = fuzz(args.target, [*flags, *map(str, args.inputs)])
            verdict = f"{len(args.inputs)} input(s) replayed"
        else:
            if args.runs:
                flags.append(f"-runs={args.runs}")
            if args.seconds or not args.runs:
                flags.append(f"-max_total_time={args.seconds or DEFAULT_SECONDS}")
            corpus = args.corpus or Path(scratch) / "corpus"
            write_seeds(corpus, harness.seeds())
            run = fuzz(args.target, [*flags, str(corpus)])
            inputs = sum(1 for path in corpus.iterdir() if path.is_file())
            kept = f" (kept in {corpus})" if args.corpus else ""
            verdict = f"{run.runs} runs with seed {run.seed}, corpus of {inputs} inputs{kept}"
    print(f"sentinel fuzz {args.target}: {verdict} in {time.monotonic() - started:.0f} s")
    for artifact in run.artifacts:
        print(f"crash: {artifact} (replay it: sentinel fuzz {args.target} {artifact})")
    if run.returncode == 0 and not run.artifacts:
        print("no crash")
        return 0
    print(f"FAILED: the fuzzer exited with status {run.returncode}")
    return 1


def _dictionary_entry(token: bytes) -> str:
    """A token as a line of a libFuzzer dictionary: quoted, with anything but printable ASCII escaped."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token) + '"'


def write_seeds(corpus: Path, seeds: list[bytes]) -> None:
    """Put the target's seeds into ``corpus`` (named by content, so a kept corpus gets each once)."""
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = corpus / f"seed-{hashlib.sha1(seed).hexdigest()}"
        if not path.exists():
            path.write_bytes(seed)


def fuzz(target: str, libfuzzer_arguments: list[str]) -> FuzzRun:
    """Run ``target`` in a subprocess (``runner``) with these libFuzzer arguments; its output is passed
    on to stderr, without atheris's line per instrumented module."""
    command = [sys.executable, "-m", "sentinel.fuzz.runner", target, *libfuzzer_arguments]
    seed = runs = None
    artifacts: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(_NOISE):
                continue
            sys.stderr.write(line)
            if found := _SEED.search(line):
                seed = int(found[1])
            elif found := _RUNS.search(line):
                runs = int(found[1])
            elif found := _ARTIFACT.search(line):
                artifacts.append(found[1])
    return FuzzRun(process.returncode, seed, runs, artifacts)
