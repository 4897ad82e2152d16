"""Load a gRPC server with h2load (nghttp2), where ghz is not available.

h2load knows nothing of gRPC, so the benchmark speaks it for h2load: the request body file holds
gRPC length-prefixed messages (one for unary methods, many for a client-streaming ScoreStream) and
the headers say ``content-type: application/grpc`` and ``te: trailers``. h2load prints only
min/max/mean, so percentiles come from its per-request ``--log-file``.

A gRPC error is still HTTP status 200, which h2load counts as a success. Run with ``-v``, h2load
prints the first header block of every response; a call that fails before sending a message (every
error of Score and ScoreBatch: validation, ALREADY_EXISTS, UNAVAILABLE, RESOURCE_EXHAUSTED,
DEADLINE_EXCEEDED) answers "trailers-only", whose only header block carries ``grpc-status``, so
counting those lines counts the failed calls exactly. A successful call's ``grpc-status: 0`` comes
in trailers, which h2load does not print; an error *after* messages were sent (possible mid-stream
in ScoreStream) is not visible here, which is why the benchmark also compares with the server's
own counters and probes with a real gRPC client (docs/decisions/0008-load-benchmark-method.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

from sentinel.bench.measurement import LoadResult, LoadSettings, percentiles_ms

H2LOAD = "h2load"
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
# Bound on a run: its duration plus this, or this alone for a run of a fixed number of calls.
RUN_TIMEOUT_MARGIN_S = 120.0

_FINISHED = re.compile(r"^finished in (?P<value>[0-9.]+)(?P<unit>us|ms|s),", re.MULTILINE)
_REQUESTS = re.compile(
    r"^requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
    r"(?P<timeout>\d+) timeout",
    re.MULTILINE,
)
_STATUS_CODES = re.compile(
    r"^status codes: (?P<s2xx>\d+) 2xx, (?P<s3xx>\d+) 3xx, (?P<s4xx>\d+) 4xx, (?P<s5xx>\d+) 5xx",
    re.MULTILINE,
)
_DATA_BYTES = re.compile(r"^traffic: .*, [0-9.]+[KMG]?B \((?P<data>\d+)\) data$", re.MULTILINE)
_GRPC_STATUS = re.compile(rb"^\[stream_id=\d+\] grpc-status: (?P<code>\d+)\s*$", re.MULTILINE)
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class H2loadError(RuntimeError):
    """h2load failed or printed something this module cannot read."""


def h2load_available() -> bool:
    """True when h2load is on PATH."""
    return shutil.which(H2LOAD) is not None


def h2load_command(
    url: str, body: Path, load: LoadSettings, log_file: Path | None, duration_s: float | None = None
) -> list[str]:
    """The h2load command line for one run (``duration_s`` overrides the settings, for warm-ups)."""
    command = [
        H2LOAD,
        "--clients",
        str(load.connections),
        "--max-concurrent-streams",
        str(load.streams_per_connection),
        "--threads",
        "1",
        "--data",
        str(body),
        "--verbose",
    ]
    for header in GRPC_HEADERS:
        command += ["--header", header]
    duration = duration_s if duration_s is not None else load.duration_s
    if duration is not None:
        command += ["--duration", f"{max(1, round(duration * 1000))}ms"]
    else:
        command += ["--requests", str(load.total_calls)]
    if load.rate is not None:
        command += ["--rps", f"{load.rate / load.connections:g}"]
    if log_file is not None:
        command += ["--log-file", str(log_file)]
    command.append(url)
    return command


def parse_duration_s(output: str) -> float:
    """The measured wall time from h2load's ``finished in 3.00s, ...`` line."""
    match = _FINISHED.search(output)
    if match is None:
        raise H2loadError("h2load printed no 'finished in' line")
    return float(match["value"]) * _UNIT_SECONDS[match["unit"]]


def parse_request_counts(output: str) -> dict[str, int]:
    """The ``requests:`` and ``status codes:`` lines as numbers."""
    requests = _REQUESTS.search(output)
    statuses = _STATUS_CODES.search(output)
    if requests is None or statuses is None:
        raise H2loadError("h2load printed no 'requests:' / 'status codes:' summary")
    counts = {name: int(value) for name, value in requests.groupdict().items()}
    counts.update({name: int(value) for name, value in statuses.groupdict().items()})
    return counts


def parse_data_bytes(output: str) -> int | None:
    """Response body bytes received (the ``traffic:`` line's data figure)."""
    match = _DATA_BYTES.search(output)
    return int(match["data"]) if match else None


def parse_trailers_only_statuses(verbose_output: bytes) -> Counter[str]:
    """gRPC statuses printed in first header blocks, i.e. of calls that failed before any message."""
    counts: Counter[str] = Counter()
    for match in _GRPC_STATUS.finditer(verbose_output):
        code = int(match["code"])
        counts[_STATUS_NAMES.get(code, f"CODE_{code}")] += 1
    return counts


def parse_log(text: str) -> np.ndarray:
    """Per-request durations in ms from h2load's --log-file (start µs, HTTP status, duration µs).

    Requests that got no HTTP response (status -1) are left out: they are counted as failed.
    """
    durations = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise H2loadError(f"h2load log line {line_number} has {len(fields)} fields, expected 3")
        if int(fields[1]) >= 0:
            durations.append(int(fields[2]) / 1000.0)
    return np.asarray(durations, dtype=float)


def run_h2load(
    address: str, path: str, body: Path, load: LoadSettings, workdir: Path, *, warmup: bool = False
) -> LoadResult | None:
    """Run h2load once against ``address``; a warm-up run returns None and keeps no logs."""
    url = f"http://{address}{path}"
    stem = "warmup" if warmup else "h2load"
    log_file = None if warmup else workdir / f"{stem}-requests.tsv"
    command = h2load_command(url, body, load, log_file, load.warmup_s if warmup else None)
    duration = load.warmup_s if warmup else load.duration_s
    stdout_path = workdir / f"{stem}-stdout.txt"
    with stdout_path.open("wb") as stdout:
        completed = subprocess.run(
            command,
            stdout=stdout,
            stderr=subprocess.PIPE,
            check=False,
            timeout=(duration or 0.0) + RUN_TIMEOUT_MARGIN_S,
        )
    output = stdout_path.read_bytes()
    if completed.returncode != 0:
        raise H2loadError(
            f"h2load exited with {completed.returncode}: {completed.stderr.decode(errors='replace')[-500:]}"
        )
    if warmup:
        return None
    assert log_file is not None
    return h2load_result(output, log_file.read_text())


def h2load_result(verbose_output: bytes, log_text: str) -> LoadResult:
    """Turn h2load's verbose stdout and its request log into a LoadResult."""
    summary = verbose_output.decode(errors="replace")
    counts = parse_request_counts(summary)
    failed_statuses = parse_trailers_only_statuses(verbose_output)
    failed_statuses.pop("OK", None)  # an OK trailers-only answer carries no message but is no error
    # h2load: failed = HTTP-level failures (status >= 400) + errored; errored includes timeouts.
    errors: dict[str, int] = {}
    breakdown = {
        "h2load: HTTP status >= 400": counts["failed"] - counts["errored"],
        "h2load: stream or connection error": counts["errored"] - counts["timeout"],
        "h2load: timed out": counts["timeout"],
    }
    errors.update({description: calls for description, calls in breakdown.items() if calls > 0})
    for name, calls in failed_statuses.items():
        errors[f"grpc-status {name}"] = calls
    calls_ok = max(0, counts["succeeded"] - sum(failed_statuses.values()))
    status_codes = {"OK": calls_ok, **failed_statuses}
    latencies = parse_log(log_text)
    notes = [
        "OK = HTTP 2xx answers without a trailers-only gRPC error; a ScoreStream error after "
        "messages is not visible to h2load (see the server-side check)",
    ]
    data_bytes = parse_data_bytes(summary)
    if data_bytes is not None:
        notes.append(f"response body bytes received: {data_bytes}")
    return LoadResult(
        tool="h2load",
        duration_s=parse_duration_s(summary),
        calls_completed=counts["done"],
        calls_ok=calls_ok,
        status_codes=status_codes,
        errors=errors,
        percentiles_ms=percentiles_ms(latencies),
        latencies_ms=latencies,
        notes=notes,
        calls_abandoned=counts["started"] - counts["done"],
    )


def merge_results(results: list[LoadResult]) -> LoadResult:
    """One LoadResult of runs made side by side: counts add up, time is the longest run's."""
    status_codes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for result in results:
        status_codes.update(result.status_codes)
        errors.update(result.errors)
    latencies = np.concatenate([result.latencies_ms for result in results])
    return LoadResult(
        tool="h2load",
        duration_s=max(result.duration_s for result in results),
        calls_completed=sum(result.calls_completed for result in results),
        calls_ok=sum(result.calls_ok for result in results),
        status_codes=dict(status_codes),
        errors=dict(errors),
        percentiles_ms=percentiles_ms(latencies),
        latencies_ms=latencies,
        notes=results[0].notes[:1],
        calls_abandoned=sum(result.calls_abandoned for result in results),
    )


def run_h2load_streams(
    address: str, path: str, bodies: list[Path], workdir: Path, stem: str, timeout_s: float
) -> LoadResult:
    """One h2load per body, side by side, each sending its body as one call on its own connection.

    h2load repeats one body file in every call, and a repeated ScoreStream would only score the
    same transactions again (idempotent replays). Giving every stream its own h2load and its own
    body makes every transaction of the run distinct; time is that of the slowest stream.
    """
    one_call = LoadSettings(
        concurrency=1, connections=1, duration_s=None, total_calls=1, rate=None, warmup_s=0.0
    )
    url = f"http://{address}{path}"
    running = []
    for index, body in enumerate(bodies):
        log_file = workdir / f"{stem}-{index}-requests.tsv"
        stdout_path = workdir / f"{stem}-{index}-stdout.txt"
        with stdout_path.open("wb") as stdout:
            process = subprocess.Popen(
                h2load_command(url, body, one_call, log_file), stdout=stdout, stderr=subprocess.PIPE
            )
        running.append((process, stdout_path, log_file))
    results = []
    try:
        for process, stdout_path, log_file in running:
            _, stderr = process.communicate(timeout=timeout_s)
            if process.returncode != 0:
                raise H2loadError(
                    f"h2load exited with {process.returncode}: {stderr.decode(errors='replace')[-500:]}"
                )
            results.append(h2load_result(stdout_path.read_bytes(), log_file.read_text()))
    finally:
        for process, _, _ in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    merged = merge_results(results)
    merged.notes.append(f"{len(bodies)} streams side by side, one h2load and one distinct body each")
    return merged
