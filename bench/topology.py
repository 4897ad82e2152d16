"""The processes ``sentinel bench scale`` measures: one Redis and one PostgreSQL, SentinelStream instances
on them with TLS (as in production: ``sentinel serve`` refuses plaintext off loopback), and optionally
Debian's nginx in front running the deployment's configuration (deploy/nginx/sentinel.conf, rendered for
loopback as the proxy test does), which terminates the clients' TLS and re-encrypts to the instances.

Every process is started here, so each one's CPU can be named: the instances' workers, supervisors and
event dispatchers, Redis, PostgreSQL (postmaster and backends) and nginx (``roles`` for bench/cpu.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import reduce
from operator import add
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import grpc

from sentinel.bench.measurement import ServerCounts
from sentinel.bench.server_metrics import scrape_server_counts
from sentinel.certificates import DevPki, ensure_dev_pki
from sentinel.localservices import LocalNginx, LocalPostgres, LocalRedis, local_services
from sentinel.proxy_config import DEPLOYMENT_NGINX_CONFIG, render_proxy_config
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port


def dispatcher_pids(instance: ServerProcess) -> set[int]:
    """The event dispatchers an instance started (from their events_dispatcher_started log events)."""
    return {
        int(str(event["pid"]))
        for event in instance.log_events()
        if event.get("event") == "events_dispatcher_started" and "pid" in event
    }


@dataclass(frozen=True, slots=True)
class Layout:
    """How many of what: instances (each its own supervisor) of ``workers`` workers, behind nginx or not,
    with the event dispatchers running or not; ``settings``: more ``SENTINEL_*`` values for every
    instance."""

    instances: int
    workers: int
    proxy: bool
    events: bool
    settings: tuple[tuple[str, object], ...] = ()

    def describe(self) -> str:
        """One line for the results."""
        front = "behind nginx (deploy/nginx/sentinel.conf)" if self.proxy else "called directly"
        events = "on" if self.events else "off"
        return (
            f"{self.instances} instance(s) x {self.workers} worker(s), {front}, TLS; one Redis and one "
            f"PostgreSQL (private, loopback); event dispatchers {events}"
        )


class Deployment:
    """The services and instances of a ``Layout`` under ``workdir``; a context manager."""

    def __init__(self, workdir: Path, layout: Layout) -> None:
        if layout.instances > 1 and not layout.proxy:
            raise ValueError("several instances need the proxy in front of them")
        self.workdir, self.layout = workdir, layout
        self.instances: list[ServerProcess] = []
        self.redis: LocalRedis | None = None
        self.postgres: LocalPostgres | None = None
        self.nginx: LocalNginx | None = None
        self.pki: DevPki | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Deployment:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start(self) -> None:
        layout = self.layout
        self.redis, self.postgres, _ = self._stack.enter_context(local_services(self.workdir / "services"))
        assert self.redis is not None and self.postgres is not None
        self.pki = ensure_dev_pki(self.workdir / "pki")
        credentials = grpc.ssl_channel_credentials(self.pki.ca_cert.read_bytes())
        settings: dict[str, Any] = dict(layout.settings)
        if layout.events:
            settings["events_enabled"] = True
        for n in range(layout.instances):
            instance = ServerProcess(
                self.workdir / f"instance-{n + 1}",
                workers=layout.workers,
                credentials=credentials,
                redis_url=self.redis.url,
                database_url=self.postgres.url,
                tls_cert_file=self.pki.server_cert,
                tls_key_file=self.pki.server_key,
                **settings,
            )
            self.instances.append(self._stack.enter_context(instance))
        if layout.proxy:
            port = free_port()
            config = render_proxy_config(
                DEPLOYMENT_NGINX_CONFIG.read_text(),
                listen_port=port,
                instances=[instance.address for instance in self.instances],
                pki=self.pki,
            )
            self.nginx = LocalNginx(self.workdir / "nginx", config, port).start()
            self._stack.callback(self.nginx.stop)

    @property
    def address(self) -> str:
        """Where the load goes: nginx, or the one instance."""
        if self.nginx is not None:
            return f"127.0.0.1:{self.nginx.port}"
        return self.instances[0].address

    @property
    def ca_file(self) -> Path:
        """The CA the clients trust (nginx and the instances have certificates of it)."""
        assert self.pki is not None
        return self.pki.ca_cert

    @property
    def database_url(self) -> str:
        """The ledger's database."""
        assert self.postgres is not None
        return self.postgres.url

    def server_pids(self) -> set[int]:
        """The roots of every measured process tree."""
        services = (self.redis, self.postgres, self.nginx)
        pids = {s.process.pid for s in services if s is not None and s.process is not None}
        return pids | {pid for instance in self.instances for pid in instance.pids}

    def roles(self) -> dict[int, str]:
        """CPU parts by process (bench/cpu.py): supervisors first, their workers and dispatchers after."""
        roles = {pid: "supervisor" for instance in self.instances for pid in instance.pids}
        for instance in self.instances:
            roles.update(dict.fromkeys(instance.worker_pids(), "workers"))
            roles.update(dict.fromkeys(dispatcher_pids(instance), "dispatcher"))
        if self.nginx is not None and self.nginx.process is not None:
            roles[self.nginx.process.pid] = "proxy"
        return roles

    def counts(self) -> ServerCounts:
        """Every instance's own count of calls, decisions and stages, summed."""
        return reduce(add, (scrape_server_counts(instance.metrics_url) for instance in self.instances))

    def wal_position(self) -> int:
        """PostgreSQL's current WAL position in bytes (the WAL written between two readings)."""

        async def read() -> int:
            connection = await asyncpg.connect(self.database_url)
            try:
                return int(await connection.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
            finally:
                await connection.close()

        return asyncio.run(read())
