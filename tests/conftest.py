"""Shared fixtures: private, real Redis and PostgreSQL servers for the whole test session.

Every test that needs state talks to a real server started here (never a mock). Tests that stop or
restart a server start their own instance with ``sentinel.localservices`` so they cannot disturb
the others.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from server_helpers import RedisTarget, new_database, open_channels
from transport_helpers import tls_credentials

from sentinel.certificates import DevPki, ensure_dev_pki
from sentinel.ledger.migrate import migrate
from sentinel.localservices import LocalPostgres, LocalRabbitMQ, LocalRedis, LocalRedisCluster
from sentinel.server.rules.storage import RuleStore
from sentinel.serverprocess import ServerProcess

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    """A directory the postgres system user can reach (pytest's tmp dirs are private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="sentinel-test-"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(services_dir: Path) -> Iterator[LocalRedis]:
    """One private redis-server for the session."""
    server = LocalRedis(services_dir / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(services_dir: Path) -> Iterator[LocalPostgres]:
    """One private PostgreSQL cluster for the session."""
    server = LocalPostgres(services_dir / "postgres").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server(services_dir: Path) -> Iterator[LocalRabbitMQ]:
    """One private RabbitMQ broker for the session, started only when a test asks for it (it boots in
    seconds). A test may ``stop()`` and ``start()`` it: the same broker comes back, with its durable
    queues and persistent messages. Tests keep to exchanges and queues of their own."""
    server = LocalRabbitMQ(services_dir / "rabbitmq").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> str:
    """The session's Redis, emptied before the test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster_server(services_dir: Path) -> Iterator[LocalRedisCluster]:
    """One private Redis Cluster (3 masters with a replica each) for the session, started only when a
    test asks for it (about 5 s)."""
    server = LocalRedisCluster(services_dir / "redis-cluster").start()
    yield server
    server.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster_server: LocalRedisCluster) -> str:
    """The session's Redis Cluster, whole again (a node an earlier test killed rejoins as a replica) and
    emptied before the test."""
    redis_cluster_server.restart()
    with redis.RedisCluster.from_url(redis_cluster_server.url) as client:
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    return redis_cluster_server.url


@pytest.fixture(params=["redis", "redis-cluster"])
def any_redis(request: pytest.FixtureRequest) -> RedisTarget:
    """A test using this runs twice: against the session's Redis and against its Redis Cluster."""
    if request.param == "redis-cluster":
        return RedisTarget(request.getfixturevalue("redis_cluster_url"), cluster=True)
    return RedisTarget(request.getfixturevalue("redis_url"), cluster=False)


@pytest.fixture
def database_url(postgres_server: LocalPostgres) -> str:
    """A new, empty database of the session's cluster for this test (usable by sync and async tests)."""
    return new_database(postgres_server, f"test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(autouse=True)
def close_channels() -> Iterator[None]:
    """Close every channel a test opened (an open channel keeps a polling thread alive)."""
    yield
    while open_channels:
        open_channels.pop().close()


@pytest.fixture(autouse=True)
def no_leaked_config_file() -> Iterator[None]:
    """``load_settings(path)`` exports SENTINEL_CONFIG for the processes a command starts: undo that
    after each test, so no later test reads another test's configuration file. (monkeypatch.delenv
    would not do: when the variable is unset before the test it records nothing to restore.)"""
    os.environ.pop("SENTINEL_CONFIG", None)
    yield
    os.environ.pop("SENTINEL_CONFIG", None)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo a command's ``configure_logging`` after the test.

    Commands bind structlog and the root logger to the sys.stdout/stderr of the moment, which under
    capsys is a capture file closed after the test; later tests would log into it.
    """
    import logging

    import structlog

    from sentinel.logs import _JsonLines

    config = structlog.get_config()
    handlers = logging.getLogger().handlers[:]
    json_lines = _JsonLines.out, _JsonLines.level
    yield
    structlog.configure(**config)
    logging.getLogger().handlers[:] = handlers
    _JsonLines.out, _JsonLines.level = json_lines


@pytest.fixture
async def rule_store(database_url: str) -> AsyncIterator[RuleStore]:
    """A rule store on a fresh, migrated database."""
    await migrate(database_url)
    store = await RuleStore.connect(database_url)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def dev_server(services_dir: Path) -> Iterator[ServerProcess]:
    """One `sentinel dev serve` (1 worker, its own private Redis and PostgreSQL) for the tests of the
    generated clients; each client's transactions use ids and accounts of its own."""
    process = ServerProcess(services_dir / "dev-serve" / "server", workers=1, dev=True).start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="session")
def mtls_dev_server(services_dir: Path) -> Iterator[tuple[ServerProcess, DevPki]]:
    """`sentinel dev serve` requiring client certificates of a development PKI, for the generated clients'
    TLS options; the PKI holds the CA, client certificate and key a client is given."""
    pki = ensure_dev_pki(services_dir / "mtls-pki")
    process = ServerProcess(
        services_dir / "mtls-dev-serve" / "server",
        workers=1,
        dev=True,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca_cert,
        require_client_cert=True,
        credentials=tls_credentials(pki, client_certificate=True),
    ).start()
    yield process, pki
    assert process.stop() == 0


@pytest.fixture
def server(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[ServerProcess]:
    """``sentinel serve`` (2 workers) on the session's Redis and a fresh database. Generous budgets: the
    tests using it are about correctness on a loaded 2-core machine, where a batch that misses the Redis
    budget is (correctly) scored degraded and a slow commit (correctly) spooled. A test module about the
    default budgets defines its own."""
    with ServerProcess(
        tmp_path / "server",
        redis_url=redis_url,
        database_url=database_url,
        redis_budget_ms=2000,
        ledger_commit_timeout_s=20,
    ) as process:
        yield process
