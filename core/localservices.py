"""Private Redis, PostgreSQL and RabbitMQ instances for development, `make run` and the test suite.

They run as child processes on free loopback ports with their data in a directory of ours, so a
developer's machine, CI and a fresh clone behave alike whether or not system services run. They
are real servers (the tests' failure scenarios stop and restart them), never mocks.

A start first stops what an earlier run of the same directory left behind (its parent killed before it
could stop them): a leftover PostgreSQL would hold ``postmaster.pid`` and refuse the new one. A
leftover is the process named in the directory's pid file whose working directory is that directory
(each server changes into its own), never a process found by name.
"""

from __future__ import annotations

import asyncio
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sentinel.system import free_port, with_parent_death_signal

_Service = TypeVar("_Service", "LocalRedis", "LocalPostgres", "LocalRabbitMQ")

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# RabbitMQ boots an Erlang VM and its database before it listens: 5-9 s on a busy 2-core machine.
RABBITMQ_STARTUP_TIMEOUT_S = 120.0
# The broker's own start script; /usr/sbin/rabbitmq-server is a wrapper that switches to the rabbitmq
# user and the system's directories.
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")

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


# pg_basebackup of a standby: a fast checkpoint instead of waiting for the next, the WAL written
# meanwhile streamed along, no fsync (a test's or a developer's copy).
_BASEBACKUP_OPTIONS = ("--wal-method=stream", "--checkpoint=fast", "--no-sync")


class LocalServiceError(RuntimeError):
    """A private service could not be started; the message names the binary or the log file."""


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log_file: Path, timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServiceError(f"exited with {process.returncode}; see {log_file}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise LocalServiceError(f"not listening on port {port} after {timeout_s} s; see {log_file}")


def _find_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[::-1]), None
    )
    if not found:
        package = {"redis-server": "redis-server", "epmd": "rabbitmq-server"}.get(name, "postgresql")
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


@dataclass(frozen=True)
class ClusterNode:
    """One node of a Redis Cluster as CLUSTER NODES shows it."""

    node_id: str
    port: int
    master: bool
    master_id: str | None  # a replica's master
    slots: tuple[int, ...]  # a master's slots, ascending


@dataclass
class LocalRedisCluster:
    """A private Redis Cluster on loopback: ``masters`` masters with one replica each (LocalRedis nodes).

    Each node's cluster bus port is chosen free (``--cluster-port``): the default, port + 10000, may
    lie beyond 65535. ``start()`` creates the cluster with ``redis-cli --cluster create`` and returns
    once every node sees ``cluster_state:ok`` and every replica has synced; ``kill_master`` and
    ``move_slots`` are the failures and the operations the tests run it through.
    """

    directory: Path
    masters: int = 3
    node_timeout_ms: int = 1000  # how long a silent master takes to be failed over (plus the election)
    nodes: list[LocalRedis] = field(default_factory=list)
    die_with_parent: bool = False

    @property
    def url(self) -> str:
        """A live node's URL: the client learns the other nodes from it."""
        return next(node.url for node in self.nodes if node.process is not None)

    def start(self) -> LocalRedisCluster:
        """Start the nodes afresh (no data, no cluster configuration), create the cluster, wait for it."""
        self.nodes = [self._node(index) for index in range(2 * self.masters)]
        try:
            for node in self.nodes:
                # A node that finds a nodes.conf belongs to the cluster written there: an earlier run's.
                stop_leftover(node.directory / "redis.pid", node.directory, signal.SIGTERM)
                (node.directory / "nodes.conf").unlink(missing_ok=True)
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            _redis_cli("--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes")
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _node(self, index: int) -> LocalRedis:
        arguments = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        arguments += ["--cluster-port", str(free_port()), "--cluster-node-timeout", str(self.node_timeout_ms)]
        return LocalRedis(
            self.directory / f"node-{index}", extra_args=arguments, die_with_parent=self.die_with_parent
        )

    def topology(self) -> list[ClusterNode]:
        """The cluster as a live node sees it (failed nodes left out)."""
        found = []
        for line in self._ask(self.url, "CLUSTER", "NODES").splitlines():
            node_id, address, flags, master_id = line.split()[:4]
            if "fail" in flags or "noaddr" in flags:
                continue
            slots: list[int] = []
            for part in line.split()[8:]:
                if part.startswith("["):  # a slot being migrated or imported
                    continue
                first, _, last = part.partition("-")
                slots += range(int(first), int(last or first) + 1)
            port = int(address.split("@")[0].rsplit(":", 1)[1])
            master = "master" in flags
            found.append(ClusterNode(node_id, port, master, None if master else master_id, tuple(slots)))
        return found

    def master_of(self, slot: int) -> ClusterNode:
        """The master serving ``slot``."""
        return next(node for node in self.topology() if slot in node.slots)

    def kill_master(self, master: ClusterNode) -> ClusterNode:
        """kill -9 ``master``, wait until its replica took its slots over; the promoted node."""
        process = self._server(master.port).process
        assert process is not None
        process.kill()
        process.wait()
        self._server(master.port).process = None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(LocalServiceError, StopIteration):
                promoted = self.master_of(master.slots[0])
                if promoted.port != master.port:
                    self.wait_until_healthy()
                    return promoted
            time.sleep(0.05)
        raise LocalServiceError(f"no replica of the master on port {master.port} took over")

    def restart(self) -> None:
        """Start the killed nodes again: each rejoins as a replica of the node that took over."""
        stopped = [node for node in self.nodes if node.process is None]
        for node in stopped:
            node.start()
        if stopped:
            self.wait_until_healthy()

    def move_slots(self, source: ClusterNode, target: ClusterNode, count: int) -> None:
        """Move the ``count`` lowest slots of ``source`` to ``target`` with their keys, with
        ``redis-cli --cluster reshard`` (clients are redirected with ASK while a slot migrates)."""
        ends = ["--cluster-from", source.node_id, "--cluster-to", target.node_id]
        slots = ["--cluster-slots", str(count), "--cluster-yes"]
        _redis_cli("--cluster", "reshard", f"127.0.0.1:{source.port}", *ends, *slots)
        self.wait_until_healthy()

    def wait_until_healthy(self) -> None:
        """Until every live node sees ``cluster_state:ok``, the same slot map, and every replica is synced."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if self._healthy():
                    return
            except LocalServiceError:
                pass
            if time.monotonic() > deadline:
                raise LocalServiceError(f"the cluster is not healthy; see {self.directory}/*/redis.log")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        views = set()
        for node in self.nodes:
            if node.process is None:
                continue
            if "cluster_state:ok" not in self._ask(node.url, "CLUSTER", "INFO"):
                return False
            replication = self._ask(node.url, "INFO", "replication")
            if "role:slave" in replication and (
                "master_link_status:up" not in replication or "master_sync_in_progress:0" not in replication
            ):
                return False
            views.add(self._ask(node.url, "CLUSTER", "SLOTS"))
        return len(views) == 1

    def _server(self, port: int) -> LocalRedis:
        return next(node for node in self.nodes if node.port == port)

    @staticmethod
    def _ask(url: str, *command: str) -> str:
        port = url.rsplit(":", 1)[1].split("/")[0]
        result = subprocess.run(
            [_find_binary("redis-cli"), "-p", port, *command], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or result.stdout.startswith(("ERR", "Could not connect")):
            output = result.stdout + result.stderr
            raise LocalServiceError(f"redis-cli {' '.join(command)} on port {port}: {output}")
        return result.stdout

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


def _redis_cli(*arguments: str) -> None:
    """Run ``redis-cli`` (cluster management), raising with its output when it fails."""
    result = subprocess.run(
        [_find_binary("redis-cli"), *arguments], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise LocalServiceError(f"redis-cli {arguments[:2]} failed: {result.stdout[-2000:]}{result.stderr}")


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

    def replica(self, directory: Path) -> LocalPostgres:
        """A streaming-replication standby of this running cluster in ``directory``, started.

        ``pg_basebackup -R`` copies the cluster and writes standby.signal and the primary_conninfo
        to stream the WAL from it; the superuser has the REPLICATION attribute and initdb's pg_hba.conf
        lets it open a replication connection over loopback. The standby's connections are read-only
        and see what it has replayed (``pg_wal_replay_pause()`` holds it back).
        """
        standby = LocalPostgres(directory, superuser=self.superuser, die_with_parent=self.die_with_parent)
        owner = self._run_as()
        directory.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        data = directory / "data"
        if not (data / "PG_VERSION").exists():
            source = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser]
            result = subprocess.run(
                [_find_binary("pg_basebackup"), *source, "-D", str(data), "-R", *_BASEBACKUP_OPTIONS],
                user=owner.pw_name if owner else None,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise LocalServiceError(f"pg_basebackup failed: {result.stderr.strip()}")
        return standby.start()

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


@dataclass
class LocalRabbitMQ:
    """A private RabbitMQ broker (Debian's rabbitmq-server) with an epmd of its own, on loopback ports.

    What the broker would otherwise take from the system lives in ``directory``: its database (durable
    queues and persistent messages: kept, so ``stop()`` then ``start()`` brings back the same broker on
    the same port with its messages), logs, plugin list (none: no management listener), configuration
    (none: the defaults) and the Erlang cookie (HOME points there). An Erlang node registers its name
    with epmd, which listens on 4369 and, started by the node, outlives it as a daemon; ours is a child
    on a free port (``ERL_EPMD_PORT``), stopped with the broker. With no other node on that epmd the
    node name can be fixed, which matters because the database belongs to the node name: a later start
    on other ports (a new ``sentinel dev serve``) finds the same queues.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)  # Erlang distribution (CLI tools, clustering)
    epmd_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    epmd: subprocess.Popen[bytes] | None = None
    die_with_parent: bool = False  # opt-in: see die_with_parent()

    NODE_NAME = "sentinel@localhost"

    @property
    def amqp_url(self) -> str:
        # guest may log in over loopback only, which is all this broker listens on
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> LocalRabbitMQ:
        """Start epmd and the broker (the first start creates its database) and wait until an AMQP
        client can log in."""
        if not RABBITMQ_SERVER.exists():
            raise LocalServiceError(f"{RABBITMQ_SERVER} not found: install the rabbitmq-server package")
        self.directory.mkdir(parents=True, exist_ok=True)
        stop_leftover(self.directory / "rabbitmq.pid", self.directory, signal.SIGTERM)
        stop_leftover(self.directory / "epmd.pid", self.directory, signal.SIGTERM)
        (self.directory / "enabled_plugins").write_text("[].\n")
        log_file = self.directory / "rabbitmq-server.log"  # the start script's output; the broker's: log/
        preexec = with_parent_death_signal(signal.SIGTERM) if self.die_with_parent else None
        try:
            with log_file.open("ab") as log:
                self.epmd = subprocess.Popen(
                    [_find_binary("epmd"), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                    cwd=self.directory,  # what makes a leftover recognisable (see leftover_pid)
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=preexec,
                )
                (self.directory / "epmd.pid").write_text(f"{self.epmd.pid}\n")
                _wait_for_port(self.epmd_port, self.epmd, log_file)
                # The script stops the Erlang VM cleanly on SIGTERM and waits for it.
                self.process = subprocess.Popen(
                    [str(RABBITMQ_SERVER)],
                    cwd=self.directory,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=preexec,
                )
            _wait_for_port(self.port, self.process, log_file, RABBITMQ_STARTUP_TIMEOUT_S)
            _wait_for_amqp_login(self.amqp_url, self.directory / "log")
        except BaseException:
            self.stop()
            raise
        return self

    def _environment(self) -> dict[str, str]:
        inherited = {
            name: value for name, value in os.environ.items() if not name.startswith(("RABBITMQ_", "ERL_"))
        }
        directory = str(self.directory)
        return {
            **inherited,
            "HOME": directory,  # the Erlang cookie: $HOME/.erlang.cookie, made by the first start
            "RABBITMQ_NODENAME": self.NODE_NAME,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": directory,
            "RABBITMQ_MNESIA_DIR": f"{directory}/data",
            "RABBITMQ_LOG_BASE": f"{directory}/log",
            "RABBITMQ_LOGS": f"{directory}/log/rabbit.log",
            "RABBITMQ_PID_FILE": f"{directory}/rabbitmq.pid",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{directory}/enabled_plugins",
            # None of these exists: the defaults serve, and the system's (/etc/rabbitmq) must not apply.
            # (No rabbitmq.conf also saves its translation at boot, 1-2 s.)
            "RABBITMQ_CONFIG_FILE": f"{directory}/rabbitmq.conf",
            "RABBITMQ_CONF_ENV_FILE": f"{directory}/rabbitmq-env.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{directory}/advanced.config",
            # The node must not start an epmd daemon of its own if ours is gone, and its distribution
            # port listens on loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
            ),
        }

    def stop(self) -> None:
        """Stop the broker cleanly (its messages stay in the database), then epmd."""
        _terminate(self.process)
        self.process = None
        # The script may have been killed before the VM it started stopped.
        stop_leftover(self.directory / "rabbitmq.pid", self.directory, signal.SIGTERM)
        _terminate(self.epmd)
        self.epmd = None


def _wait_for_amqp_login(url: str, log_directory: Path) -> None:
    """Wait until an AMQP client can connect and log in: the port opens a moment before the broker
    accepts logins."""
    import aio_pika  # here, not at the top: the CLI imports this module and needs no AMQP client
    from aiormq.exceptions import AMQPError

    async def log_in() -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                connection = await aio_pika.connect(url, timeout=2.0)
            except (OSError, TimeoutError, AMQPError) as exc:
                if time.monotonic() > deadline:
                    message = f"RabbitMQ refuses logins ({exc!r}); see {log_directory}"
                    raise LocalServiceError(message) from exc
                await asyncio.sleep(0.1)
            else:
                await connection.close()
                return

    # A thread with an event loop of its own: start() is also called from async tests.
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, log_in()).result()


NGINX_BINARY = "/usr/sbin/nginx"  # Debian's nginx-light / nginx; /usr/sbin is not on every user's PATH
_NGINX_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # all of them: defaults are /var


def nginx_binary() -> str | None:
    """Debian's nginx binary, or None when it is not installed."""
    return shutil.which("nginx") or (NGINX_BINARY if os.access(NGINX_BINARY, os.X_OK) else None)


@dataclass
class LocalNginx:
    """A private nginx in the foreground running an ``http{}``-level configuration of ours (the gRPC proxy
    test: deploy/nginx/sentinel.conf rendered for loopback ports), with its pid file, logs and temporary
    files in ``directory``. ``port``: the port the configuration listens on, waited for at start."""

    directory: Path
    http_config: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalNginx:
        """Check the configuration (``nginx -t``, its error quoted), start nginx and wait for the port."""
        binary = nginx_binary()
        if binary is None:
            raise LocalServiceError("nginx not found: install the nginx-light package")
        self.directory.mkdir(parents=True, exist_ok=True)
        pid_file = self.directory / "nginx.pid"
        stop_leftover(pid_file, self.directory, signal.SIGTERM)
        (self.directory / "http.conf").write_text(self.http_config)
        main_config = self.directory / "nginx.conf"
        main_config.write_text(self._main_config(pid_file))
        command = [binary, "-p", str(self.directory), "-c", str(main_config), "-e", "stderr"]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LocalServiceError(f"nginx -t refused the configuration: {check.stderr.strip()}")
        log_file = self.directory / "error.log"
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_for_port(self.port, self.process, log_file)
        return self

    def _main_config(self, pid_file: Path) -> str:
        """The main file around the http{}-level one: foreground, one worker, everything in our directory."""
        d = self.directory
        return (
            f"daemon off;\nworker_processes 1;\npid {pid_file};\nerror_log {d / 'error.log'} info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {d / 'access.log'};\n"
            + "".join(f"    {kind}_temp_path {d / kind};\n" for kind in _NGINX_TEMP_PATHS)
            + f"    include {d / 'http.conf'};\n}}\n"
        )

    def stop(self) -> None:
        """Stop nginx (SIGTERM: fast shutdown; SIGKILL after 10 s)."""
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
    directory: Path, redis: bool = True, postgres: bool = True, rabbitmq: bool = False
) -> Iterator[tuple[LocalRedis | None, LocalPostgres | None, LocalRabbitMQ | None]]:
    """Start the requested private services under ``directory`` and stop them on exit (or when the
    calling process dies), in the reverse order."""
    with contextlib.ExitStack() as started:

        def start(service: _Service) -> _Service:
            service.start()
            started.callback(service.stop)
            return service

        yield (
            start(LocalRedis(directory / "redis", die_with_parent=True)) if redis else None,
            start(LocalPostgres(directory / "postgres", die_with_parent=True)) if postgres else None,
            start(LocalRabbitMQ(directory / "rabbitmq", die_with_parent=True)) if rabbitmq else None,
        )
