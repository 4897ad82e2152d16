"""Private Redis and PostgreSQL instances for development, `make run` and the test suite.

They run as child processes on free loopback ports with their data in a directory of ours, so a
developer's machine, CI and a fresh clone behave alike whether or not system services run. They
are real servers (the tests' failure scenarios stop and restart them), never mocks.

A start first stops what an earlier run of the same directory left behind (its parent killed before it
could stop them): a leftover PostgreSQL would hold ``postmaster.pid`` and refuse the new one. A
leftover is the process named in the directory's pid file whose working directory is that directory
(each server changes into its own), never a process found by name.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sentinel.system import free_port, with_parent_death_signal

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# Settings of the private PostgreSQL beyond its defaults; each is also advice for a production ledger
# database (README, "Ledger database settings").
POSTGRES_SETTINGS = (
    "max_connections=200",
    "shared_buffers=128MB",
    # A new 16 MB WAL segment is written full of zeros before use by default: with the ledger writing
    # ~15 MB of WAL per second at 10,000 decisions/s, every commit waited ~7-24 ms once a second while
    # a segment was filled (measured: commit wait p99 6-68 ms in seven runs; 3.7-4.4 ms in four
    # without). Durability does not depend on it (commits still fsync the WAL); recycled segments skip
    # it anyway once a cluster has checkpointed, so what it saves is the stall of every segment a fresh
    # or growing WAL creates.
    "wal_init_zero=off",
)


class LocalServiceError(RuntimeError):
    """A private service could not be started; the message names the binary or the log file."""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServiceError(f"exited with {process.returncode}; see {log_file}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise LocalServiceError(f"not listening on port {port} after {STARTUP_TIMEOUT_S} s; see {log_file}")


def _find_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[::-1]), None
    )
    if not found:
        package = "redis-server" if name == "redis-server" else "postgresql"
        raise LocalServiceError(f"{name} not found: install the {package} package")
    return found


@dataclass
class LocalRedis:
    """A private redis-server without persistence (state is a cache of the ledger's truth)."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)  # e.g. ["--cluster-enabled", "yes"]
    die_with_parent: bool = False  # opt-in: see die_with_parent()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        """Start the server and wait until it accepts connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        pid_file = self.directory / "redis.pid"
        stop_leftover(pid_file, self.directory, signal.SIGTERM)
        log_file = self.directory / "redis.log"
        command = [
            _find_binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(log_file),
            "--pidfile",
            str(pid_file),
            "--protected-mode",
            "yes",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            preexec_fn=with_parent_death_signal(signal.SIGTERM) if self.die_with_parent else None,
        )
        _wait_for_port(self.port, self.process, log_file)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        _terminate(self.process)
        self.process = None


@dataclass
class LocalPostgres:
    """A private PostgreSQL cluster (initdb on first use) listening on a loopback port.

    PostgreSQL refuses to run as root, so when we are root the cluster belongs to the ``postgres``
    system user (or ``nobody``) and the server runs as that user.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    superuser: str = "postgres"
    die_with_parent: bool = False  # opt-in: see die_with_parent()

    @property
    def url(self) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str, user: str | None = None) -> str:
        """Connection string for a database of this cluster."""
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise LocalServiceError("running as root and neither user 'postgres' nor 'nobody' exists")

    def start(self) -> LocalPostgres:
        """initdb when the directory is new, then start the server and wait for it."""
        owner = self._run_as()
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        log_file = self.directory / "postgres.log"
        if owner is not None:
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._make_reachable(owner)
        user = owner.pw_name if owner else None
        if not (data / "PG_VERSION").exists():
            result = subprocess.run(
                [
                    _find_binary("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    self.superuser,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                    "--no-instructions",
                ],
                user=user,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise LocalServiceError(f"initdb failed: {result.stderr.strip()}")
        pid_file = data / "postmaster.pid"
        if not stop_leftover(pid_file, data, signal.SIGINT):  # SIGINT: a fast, clean shutdown
            pid_file.unlink(missing_ok=True)  # stale: its process is gone (or the pid is someone else's)
        command = [
            _find_binary("postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.directory}",
            *(argument for setting in POSTGRES_SETTINGS for argument in ("-c", setting)),
        ]
        with log_file.open("ab") as log:
            if owner is not None:
                os.chown(log_file, owner.pw_uid, owner.pw_gid)
            self.process = subprocess.Popen(
                command,
                user=user,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=with_parent_death_signal(signal.SIGINT) if self.die_with_parent else None,
            )
        _wait_for_port(self.port, self.process, log_file)
        self._wait_until_accepting(log_file)
        return self

    def _make_reachable(self, owner: pwd.struct_passwd) -> None:
        """The postgres user must be able to traverse every parent of the data directory."""
        for parent in self.directory.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise LocalServiceError(
                    f"user {owner.pw_name} cannot reach {self.directory}: {parent} is not "
                    "searchable by others (choose SENTINEL_DATA_DIR elsewhere)"
                )

    def _wait_until_accepting(self, log_file: Path) -> None:
        """The port opens before recovery ends; wait until a query works."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        isready = _find_binary("pg_isready")
        while time.monotonic() < deadline:
            result = subprocess.run(
                [isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser],
                check=False,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise LocalServiceError(f"postgres did not accept connections; see {log_file}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (SIGINT, a clean shutdown) or ``immediate`` (SIGQUIT, a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        _terminate(self.process)
        self.process = None


def leftover_pid(pid_file: Path, directory: Path) -> int | None:
    """The live process that ``pid_file`` names, if it runs in ``directory``; else None.

    The pid file alone is not enough (the pid may have been reused); a server's working directory is
    its data directory, so a process running there is the one that wrote the file.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None  # exited, waiting for a parent that does not reap it
        running_in = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError, IndexError):
        return None
    return pid if running_in == directory.resolve() else None


def stop_leftover(pid_file: Path, directory: Path, signum: int) -> bool:
    """Stop the process an earlier run of ``directory`` left behind (``signum``, SIGKILL after 10 s).

    Returns whether there was one."""
    pid = leftover_pid(pid_file, directory)
    if pid is None:
        return False
    os.kill(pid, signum)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while leftover_pid(pid_file, directory) == pid:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.05)
    return True


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def local_services(
    directory: Path, redis: bool = True, postgres: bool = True
) -> Iterator[tuple[LocalRedis | None, LocalPostgres | None]]:
    """Start the requested private services under ``directory`` and stop them on exit (or when the
    calling process dies)."""
    started_redis = LocalRedis(directory / "redis", die_with_parent=True).start() if redis else None
    try:
        started_pg = LocalPostgres(directory / "postgres", die_with_parent=True).start() if postgres else None
    except BaseException:
        if started_redis:
            started_redis.stop()
        raise
    try:
        yield started_redis, started_pg
    finally:
        if started_pg:
            started_pg.stop()
        if started_redis:
            started_redis.stop()
