"""The cached process id of the multiprocess metric values (sentinel.metric_values): updates write the
same files as the library's own values, ask no getpid(), and a forked child still gets files of its own.

Each check runs in a fresh interpreter: multiprocess mode is chosen when prometheus_client is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_PROGRAM = textwrap.dedent(
    """
    import json, os, sys

    from prometheus_client import CollectorRegistry, Counter, multiprocess

    from sentinel.metric_values import read_process_id_once

    read_process_id_once()
    read_process_id_once()  # idempotent: one set of file handles
    calls = Counter("calls", "Calls.", ["code"])
    getpid_calls = 0

    def count_getpid(frame, event, function):
        global getpid_calls
        if event == "c_call" and function is os.getpid:
            getpid_calls += 1

    sys.setprofile(count_getpid)
    for _ in range(1000):
        calls.labels("OK").inc()
    sys.setprofile(None)
    child = os.fork()
    if child == 0:  # a forked child counts in a file of its own
        calls.labels("OK").inc(5)
        os._exit(0)
    os.waitpid(child, 0)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    total = registry.get_sample_value("calls_total", {"code": "OK"})
    files = sorted(name for name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    report = {"total": total, "files": files, "pid": os.getpid(), "child": child, "getpid": getpid_calls}
    print(json.dumps(report))
    """
)


def test_updates_ask_no_getpid_and_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["getpid"] == 0  # the library's own values ask once per update
    assert report["total"] == 1005.0  # the parent's 1,000 and the child's 5, summed like the workers'
    assert report["files"] == sorted([f"counter_{report['pid']}.db", f"counter_{report['child']}.db"])
