"""Load an HTTP/JSON endpoint with wrk, a new transaction id in every call.

h2load sends one fixed body, so against SentinelStream every call after the first would be an idempotent
replay (far cheaper than a decision). wrk builds each request in a Lua script: it cycles through body
templates (proto3 JSON of a request whose transaction ids read ``__ID__``) and puts a fresh id in each,
as ghz does with ``{{.RequestNumber}}``. The script's ``done`` prints one JSON line with wrk's counts
and latency percentiles, which this module reads. wrk speaks HTTP/1.1: one call in flight per
connection, so its connections are the concurrency.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.bench.measurement import REPORTED_PERCENTILES, LoadResult, LoadSettings

WRK = "wrk"
ID_PLACEHOLDER = "__ID__"
RUN_TIMEOUT_MARGIN_S = 60.0

# args: the templates file (one JSON body a line), the id prefix. Ids: <prefix>-t<thread>-<call>.
LUA_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end
function init(args)
  templates = {}
  for line in io.lines(args[1]) do table.insert(templates, line) end
  prefix = args[2] .. "-t" .. thread_index .. "-"
  calls = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  calls = calls + 1
  local body = string.gsub(templates[(calls - 1) % #templates + 1], "__ID__", prefix .. calls)
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99)))
end
"""


class WrkError(RuntimeError):
    """wrk failed or printed something this module cannot read."""


def wrk_available() -> bool:
    """True when wrk is on PATH (Debian package wrk)."""
    return shutil.which(WRK) is not None


def write_templates(path: Path, bodies: list[dict[str, Any]]) -> Path:
    """One compact JSON body a line; each must hold ID_PLACEHOLDER where the id goes."""
    lines = [json.dumps(body, separators=(",", ":")) for body in bodies]
    if not all(ID_PLACEHOLDER in line for line in lines):
        raise ValueError(f"every body template needs {ID_PLACEHOLDER} in it")
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk_command(
    url: str, script: Path, templates: Path, id_prefix: str, concurrency: int, seconds: int
) -> list[str]:
    """The wrk command line: one thread, ``concurrency`` connections, for ``seconds``."""
    return [
        WRK,
        "--threads",
        "1",
        "--connections",
        str(concurrency),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "10s",
        "--script",
        str(script),
        url,
        "--",
        str(templates),
        id_prefix,
    ]


def parse_wrk_summary(output: str) -> dict[str, int]:
    """The JSON line the script's ``done`` printed."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                return {key: int(value) for key, value in json.loads(line).items()}
            except (ValueError, TypeError, AttributeError) as exc:
                raise WrkError(f"unreadable wrk summary {line!r}: {exc}") from None
    raise WrkError("wrk printed no summary line")


def wrk_result(summary: dict[str, int]) -> LoadResult:
    """SentinelStream's view of one wrk run (statuses by HTTP class: wrk counts no more)."""
    failed_http = summary["non_2xx_3xx"]
    socket_errors = {name: summary[name] for name in ("connect", "read", "write", "timeout") if summary[name]}
    calls_ok = max(0, summary["requests"] - failed_http)
    errors = {f"wrk: socket {name} errors": count for name, count in socket_errors.items()}
    if failed_http:
        errors["wrk: HTTP status >= 400"] = failed_http
    percentiles = dict(
        zip(
            REPORTED_PERCENTILES,
            (summary[f"p{int(p)}_us"] / 1000.0 for p in REPORTED_PERCENTILES),
            strict=True,
        )
    )
    return LoadResult(
        tool="wrk",
        duration_s=summary["duration_us"] / 1e6,
        calls_completed=summary["requests"],
        calls_ok=calls_ok,
        status_codes={"HTTP 2xx": calls_ok, **({"HTTP >= 400": failed_http} if failed_http else {})},
        errors=errors,
        percentiles_ms=percentiles,
        latencies_ms=np.asarray([], dtype=float),
        notes=[
            "wrk reports percentiles of every call, failed ones included",
            "calls in flight when the time is up are dropped uncounted (the server sees them CANCELLED)",
        ],
    )


def run_wrk(
    url: str, templates: Path, id_prefix: str, load: LoadSettings, workdir: Path, *, warmup: bool = False
) -> LoadResult | None:
    """Run wrk once against ``url`` (POST); a warm-up returns None."""
    seconds = load.warmup_s if warmup else load.duration_s
    if seconds is None:
        raise WrkError("wrk runs for a duration, not a number of calls")
    script = workdir / "wrk-post.lua"
    script.write_text(LUA_SCRIPT)
    command = wrk_command(url, script, templates, id_prefix, load.concurrency, max(1, round(seconds)))
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + RUN_TIMEOUT_MARGIN_S
    )
    (workdir / f"wrk-{'warmup' if warmup else 'run'}-stdout.txt").write_text(completed.stdout)
    if completed.returncode != 0:
        raise WrkError(f"wrk exited with {completed.returncode}: {completed.stderr[-500:]}")
    return None if warmup else wrk_result(parse_wrk_summary(completed.stdout))
