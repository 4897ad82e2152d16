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
from server_helpers import new_database, open_channels

from sentinel.ledger.migrate import migrate
from sentinel.localservices import LocalPostgres, LocalRedis
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


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> str:
    """The session's Redis, emptied before the test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


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
def no_leaked_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_settings(path)`` exports SENTINEL_CONFIG for the processes a command starts: undo that
    after each test, so no later test reads another test's configuration file."""
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo a command's ``configure_logging`` after the test.

    Commands bind structlog and the root logger to the sys.stdout/stderr of the moment, which under
    capsys is a capture file closed after the test; later tests would log into it.
    """
    import logging

    import structlog

    config = structlog.get_config()
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.configure(**config)
    logging.getLogger().handlers[:] = handlers


@pytest.fixture
async def rule_store(database_url: str) -> AsyncIterator[RuleStore]:
    """A rule store on a fresh, migrated database."""
    await migrate(database_url)
    store = await RuleStore.connect(database_url)
    yield store
    await store.close()


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
