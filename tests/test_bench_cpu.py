"""The CPU split of a benchmark run: attribution by process ancestry, pid reuse, reaped children."""

from __future__ import annotations

import os

from sentinel.bench.cpu import ProcessTime, cpu_by_part, cpu_report, process_times
from sentinel.bench.report import record_summaries

BENCH, SERVER, WORKER, POSTGRES, BACKEND, REDIS, CLIENT, STRANGER = 100, 200, 201, 210, 211, 220, 101, 300


def _snapshot(
    cpu: dict[int, float], reaped: float = 0.0, reused: int | None = None
) -> dict[int, ProcessTime]:
    tree = {
        BENCH: (1, "sentinel"),
        SERVER: (BENCH, "sentinel"),
        WORKER: (SERVER, "sentinel"),
        POSTGRES: (SERVER, "postgres"),
        BACKEND: (POSTGRES, "postgres"),
        REDIS: (SERVER, "redis-server"),
        CLIENT: (BENCH, "python3"),
        STRANGER: (1, "make"),
    }
    return {
        pid: ProcessTime(
            parent, program, 2 if pid == reused else 1, cpu[pid], reaped if pid == BENCH else 0.0
        )
        for pid, (parent, program) in tree.items()
        if pid in cpu
    }


def test_each_process_counts_for_its_part() -> None:
    before = _snapshot(
        {BENCH: 1.0, SERVER: 1.0, WORKER: 2.0, POSTGRES: 0.5, BACKEND: 0.0, REDIS: 1.0, STRANGER: 5.0},
        reaped=3.0,
    )
    # the client started and exited during the run (its time is in the benchmark's reaped children);
    # the backend is new; the stranger's pid now belongs to a process started later
    after = _snapshot(
        {BENCH: 1.5, SERVER: 1.1, WORKER: 4.0, POSTGRES: 0.6, BACKEND: 1.2, REDIS: 1.4, STRANGER: 0.25},
        reaped=4.0,
        reused=STRANGER,
    )
    used = cpu_by_part(before, after, {SERVER}, benchmark_pid=BENCH)
    assert {part: round(seconds, 6) for part, seconds in used.items()} == {
        "server": 2.1,
        "redis": 0.4,
        "postgres": 1.3,
        "load_generator": 1.5,
        "other": 0.25,
    }
    report = cpu_report(used, wall_s=2.0, transactions=1000)
    assert report["cores_busy"]["total"] == round(5.55 / 2, 2)
    assert report["us_per_transaction"]["postgres"] == 1300.0


def test_roles_name_finer_parts_of_the_server_tree() -> None:
    """A role covers its process and descendants but Redis and PostgreSQL; the one listed last wins
    where roles nest."""
    before = _snapshot({BENCH: 0.0, SERVER: 0.0, WORKER: 0.0, POSTGRES: 0.0, BACKEND: 0.0, REDIS: 0.0})
    after = _snapshot({BENCH: 0.0, SERVER: 0.5, WORKER: 2.0, POSTGRES: 1.0, BACKEND: 1.0, REDIS: 0.25})
    used = cpu_by_part(
        before, after, {SERVER}, benchmark_pid=BENCH, roles={SERVER: "supervisor", WORKER: "workers"}
    )
    assert {part: seconds for part, seconds in used.items() if seconds} == {
        "supervisor": 0.5,
        "workers": 2.0,
        "postgres": 2.0,
        "redis": 0.25,
    }
    assert used["server"] == 0.0


def test_a_renamed_process_counts_only_its_new_time() -> None:
    """Kernel workers rename themselves after their work queue: same pid and start, not a new process."""
    before = {7: ProcessTime(2, "kworker/1:1H-kblockd", 1, 26.0, 0.0)}
    after = {7: ProcessTime(2, "kworker/1:1H-events", 1, 26.5, 0.0)}
    assert cpu_by_part(before, after, set(), benchmark_pid=BENCH)["other"] == 0.5


def test_reads_this_machine() -> None:
    times = process_times()
    assert os.getpid() in times and times[os.getpid()].program
    assert times[os.getpid()].cpu_s > 0


def test_a_run_reports_the_server_cpu_against_the_do_nothing_servers() -> None:
    cpu = {
        "cores_busy": {"server": 1.2, "total": 1.9},
        "us_per_transaction": {"server": 824.0, "total": 1300.0},
    }
    ceiling = {"cores_busy": {"server": 1.1}, "us_per_transaction": {"server": 225.0}}
    lines = record_summaries({"cpu": cpu, "ceiling": {"cpu": ceiling}})
    assert lines[-1] == (
        "do-nothing server in the same run: 225 µs of server CPU per transaction; "
        "SentinelStream's server 3.7 times that"
    )
    assert not any("do-nothing" in line for line in record_summaries({"cpu": cpu}))  # --no-ceiling
