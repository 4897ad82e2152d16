"""Load a gRPC server with ghz, the tool payments teams use, and read its JSON report.

ghz speaks gRPC itself: it reads the method from the shipped .proto files (``--proto``, the default;
by server reflection it asks for the method's name, which grpcio's reflection cannot resolve), sends
the JSON data file's messages (a JSON array is used round-robin for unary calls, as the messages of one
stream for ScoreStream) and reports every call's gRPC status. Its data is a
template evaluated for every call, so transaction ids carry ``{{.RequestNumber}}`` and every call
scores transactions the server has not seen (no idempotent replays). ghz reports durations in
nanoseconds; ``--duration-stop=wait`` lets calls in flight at the end finish instead of counting
them as errors. The pinned ghz is built into the repository's ``.tools/`` by ``make bench-tools``
(deploy/install-go-tools.sh); that one is used when it is there, else ghz on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from sentinel.bench.measurement import REPORTED_PERCENTILES, LoadResult, LoadSettings, percentiles_ms

GHZ = "ghz"
# The repository's .tools/ (this file is bench/ghz.py; editable installs link it, hence resolve()).
TOOLS_DIR = Path(__file__).resolve().parent.parent / ".tools"
NANOSECONDS_PER_MS = 1_000_000
RUN_TIMEOUT_MARGIN_S = 120.0
UNIQUE_ID_SUFFIX = "-r{{.RequestNumber}}"  # ghz call template: a new id in every call


class GhzError(RuntimeError):
    """ghz failed or wrote a report this module cannot read."""


def ghz_executable() -> str | None:
    """The repository's ``.tools/ghz`` (``make bench-tools``), else ghz on PATH; None without either."""
    return shutil.which(GHZ, path=str(TOOLS_DIR)) or shutil.which(GHZ)


def ghz_available() -> bool:
    """True when ghz is in the repository's .tools/ or on PATH."""
    return ghz_executable() is not None


def _with_unique_ids(value: Any) -> Any:
    """Append the per-call template suffix to every transaction_id in a JSON-ready message."""
    if isinstance(value, dict):
        return {
            key: (
                item + UNIQUE_ID_SUFFIX
                if key == "transaction_id" and isinstance(item, str)
                else _with_unique_ids(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_unique_ids(item) for item in value]
    return value


def ghz_data(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The JSON data of a call's messages, transaction ids made unique per call."""
    return [
        _with_unique_ids(MessageToDict(message, preserving_proto_field_name=True)) for message in messages
    ]


def ghz_command(
    address: str,
    call: str,
    data_file: Path,
    load: LoadSettings,
    report_file: Path | None,
    proto: tuple[Path, Path] | None = None,
    duration_s: float | None = None,
) -> list[str]:
    """The ghz command line; ``proto`` is (the .proto file, its import root), else reflection."""
    tls = ["--cacert", str(load.ca_file)] if load.ca_file is not None else ["--insecure"]
    command = [
        ghz_executable() or GHZ,
        *tls,
        "--call",
        call,
        "--data-file",
        str(data_file),
        "--concurrency",
        str(load.concurrency),
        "--connections",
        str(load.connections),
        "--duration-stop",
        "wait",
    ]
    if proto is not None:
        proto_file, import_root = proto
        command += ["--proto", str(proto_file), "--import-paths", str(import_root)]
    duration = duration_s if duration_s is not None else load.duration_s
    if duration is not None:
        command += ["--duration", f"{max(1, round(duration * 1000))}ms"]
    else:
        command += ["--total", str(load.total_calls)]
    if load.rate is not None:
        command += ["--rps", str(max(1, round(load.rate)))]
    if report_file is not None:
        command += ["--format", "json", "--output", str(report_file)]
    command.append(address)
    return command


def parse_ghz_report(report: dict[str, Any]) -> LoadResult:
    """SentinelStream's view of a ghz JSON report (``-O json``)."""
    try:
        count = int(report["count"])
        total_ns = int(report["total"])
        status_codes = {str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
        error_distribution = {str(k): int(v) for k, v in (report.get("errorDistribution") or {}).items()}
        distribution = report.get("latencyDistribution") or []
        details = report.get("details") or []
    except (KeyError, TypeError, ValueError) as exc:
        raise GhzError(f"not a ghz JSON report: {exc!r}") from None
    calls_ok = status_codes.get("OK", 0)
    errors = error_distribution or {
        f"grpc-status {name}": calls for name, calls in status_codes.items() if name != "OK"
    }
    ok_latencies_ms = np.asarray(
        [d["latency"] / NANOSECONDS_PER_MS for d in details if d.get("status") == "OK"], dtype=float
    )
    # ghz's own percentiles (of successful calls); computed from the details when it gave none.
    reported = {
        float(entry["percentage"]): entry["latency"] / NANOSECONDS_PER_MS
        for entry in distribution
        if float(entry["percentage"]) in REPORTED_PERCENTILES
    }
    return LoadResult(
        tool="ghz",
        duration_s=total_ns / 1e9,
        calls_completed=count,
        calls_ok=calls_ok,
        status_codes=status_codes,
        errors=errors,
        percentiles_ms=reported or percentiles_ms(ok_latencies_ms),
        latencies_ms=ok_latencies_ms,
        notes=[f"ghz end reason: {report.get('endReason', 'unknown')}"],
    )


def run_ghz(
    address: str,
    call: str,
    data_file: Path,
    load: LoadSettings,
    workdir: Path,
    proto: tuple[Path, Path] | None = None,
    *,
    warmup: bool = False,
) -> LoadResult | None:
    """Run ghz once; a warm-up run returns None."""
    report_file = None if warmup else workdir / "ghz-report.json"
    command = ghz_command(
        address, call, data_file, load, report_file, proto, load.warmup_s if warmup else None
    )
    duration = load.warmup_s if warmup else load.duration_s
    completed = subprocess.run(
        command, capture_output=True, check=False, timeout=(duration or 0.0) + RUN_TIMEOUT_MARGIN_S
    )
    # ghz exits non-zero when some calls failed; the report says which, so only a missing one is fatal.
    if warmup:
        return None
    if report_file is None or not report_file.exists():
        raise GhzError(
            f"ghz exited with {completed.returncode} and wrote no report: "
            f"{completed.stderr.decode(errors='replace')[-500:]}"
        )
    return parse_ghz_report(json.loads(report_file.read_text()))
