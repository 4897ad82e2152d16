"""Where this machine's CPU went during a measured run: server workers, Redis, PostgreSQL, the load
generator, and everything else.

On a 2-core machine the server, its Redis and PostgreSQL and the load generator share the cores, so a
throughput figure means little without knowing who used them. The split comes from /proc (Linux):
each process's user + system time before and after the run, attributed by ancestry. The server's
process tree (whose roots the caller names) is split by program name into Redis, PostgreSQL and the
server itself; the benchmark process and its other descendants are the load generator (clients that
exited during the run are counted through the benchmark's reaped-children times); the rest is
``other``, which is where other work on the machine shows up. ``roles`` names finer parts of the
server's tree by the processes they start from (``sentinel bench scale``: workers, supervisor, dispatcher,
proxy), each with its descendants.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PARTS = ("server", "redis", "postgres", "load_generator", "other")
_PROGRAM_PARTS = {"redis-server": "redis", "postgres": "postgres"}
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessTime:
    """One process: its parent, program name, start time (clock ticks after boot: tells a reused pid
    apart) and CPU seconds (own, and of its reaped children)."""

    parent: int
    program: str
    started: int
    cpu_s: float
    reaped_children_cpu_s: float


def process_times() -> dict[int, ProcessTime]:
    """Every visible process's CPU time now (processes that vanish while being read are skipped)."""
    times = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        program = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is the state, field 3 of stat(5)
        times[int(entry.name)] = ProcessTime(
            parent=int(fields[1]),
            program=program,
            started=int(fields[19]),
            cpu_s=(int(fields[11]) + int(fields[12])) / _TICKS_PER_S,
            reaped_children_cpu_s=(int(fields[13]) + int(fields[14])) / _TICKS_PER_S,
        )
    return times


def _descendants(roots: Iterable[int], times: dict[int, ProcessTime]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, process in times.items():
        children.setdefault(process.parent, []).append(pid)
    found, pending = set(), [root for root in roots if root in times]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return found


def cpu_by_part(
    before: dict[int, ProcessTime],
    after: dict[int, ProcessTime],
    server_roots: Iterable[int],
    benchmark_pid: int | None = None,
    roles: Mapping[int, str] | None = None,
) -> dict[str, float]:
    """CPU seconds each part used between the two snapshots (see the module docstring).

    ``roles``: part names by process (inside the server's tree), given to its descendants too but not
    to Redis and PostgreSQL, which stay themselves; a process under several roles takes the one listed
    last (list a supervisor before its workers)."""
    benchmark_pid = benchmark_pid or os.getpid()
    server = _descendants(server_roots, after)
    benchmark = _descendants([benchmark_pid], after) - server
    role_of = {pid: role for root, role in (roles or {}).items() for pid in _descendants([root], after)}
    used = dict.fromkeys([*PARTS, *(roles or {}).values()], 0.0)
    for pid, process in after.items():
        earlier = before.get(pid)
        if earlier is not None and earlier.started != process.started:
            earlier = None  # the pid was reused (a name is no test: kernel workers rename themselves)
        spent = process.cpu_s - (earlier.cpu_s if earlier else 0.0)
        if pid == benchmark_pid:
            spent += process.reaped_children_cpu_s - (earlier.reaped_children_cpu_s if earlier else 0.0)
        if pid in server:
            part = _PROGRAM_PARTS.get(process.program) or role_of.get(pid, "server")
        elif pid in benchmark:
            part = "load_generator"
        else:
            part = "other"
        used[part] += max(0.0, spent)
    return used


def cpu_report(used: dict[str, float], wall_s: float, transactions: int) -> dict[str, dict[str, float]]:
    """Cores busy on average and CPU µs per transaction, for each part and in total."""
    with_total = {**used, "total": sum(used.values())}
    return {
        "cores_busy": {part: round(seconds / wall_s, 2) for part, seconds in with_total.items()},
        "us_per_transaction": {
            part: round(seconds / transactions * 1e6, 1) if transactions else 0.0
            for part, seconds in with_total.items()
        },
    }
