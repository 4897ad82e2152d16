"""The private Redis, PostgreSQL and RabbitMQ that `make run`, `sentinel bench ledger` and the tests
start."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

import aio_pika
import asyncpg
import pytest
import redis
from server_helpers import stubs, transaction

from sentinel.localservices import POSTGRES_SETTINGS, LocalPostgres, LocalRabbitMQ, LocalRedis
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import scoring_pb2


async def test_private_postgres_runs_with_the_ledger_settings(postgres_server: LocalPostgres) -> None:
    connection = await asyncpg.connect(postgres_server.url)
    try:
        for setting in POSTGRES_SETTINGS:
            name, value = setting.split("=", 1)
            assert await connection.fetchval(f"SHOW {name}") == value, name
    finally:
        await connection.close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended: it waits only for a parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _session(leader: int) -> set[int]:
    """The live processes of a session (ServerProcess starts the server in one of its own)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[4]) == leader:
                members.add(int(stat.parent.name))
    return {pid for pid in members if _alive(pid)}


def test_a_start_stops_what_an_earlier_run_left_behind(services_dir: Path) -> None:
    directory = services_dir / f"leftover-{uuid.uuid4().hex[:8]}"
    left_redis, left_postgres = LocalRedis(directory / "redis"), LocalPostgres(directory / "postgres")
    redis_server, postgres = LocalRedis(directory / "redis"), LocalPostgres(directory / "postgres")
    try:
        left_redis.start()  # never stopped: its owner "crashed"
        left_postgres.start()
        redis_server.start()
        postgres.start()  # refused while the leftover held the lock
        assert left_redis.process is not None and left_postgres.process is not None
        assert left_redis.process.wait(timeout=1) is not None
        assert left_postgres.process.wait(timeout=1) is not None
        with redis.Redis.from_url(redis_server.url) as client:
            assert client.ping()
    finally:
        for service in (postgres, redis_server, left_postgres, left_redis):
            service.stop()


def _running_in(directory: Path) -> set[int]:
    """The live processes whose working directory is ``directory``."""
    found = set()
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(cwd)) == directory.resolve():
                found.add(int(cwd.parent.name))
    return {pid for pid in found if _alive(pid)}


@pytest.mark.slow
async def test_a_private_rabbitmq_keeps_its_messages_across_runs_and_leaves_nothing_behind(
    services_dir: Path,
) -> None:
    directory = services_dir / f"rabbitmq-{uuid.uuid4().hex[:8]}"
    left = LocalRabbitMQ(directory).start()  # never stopped: its owner "crashed"
    broker = LocalRabbitMQ(directory)  # other ports, the same data
    try:
        connection = await aio_pika.connect(left.amqp_url)
        channel = await connection.channel()  # with publisher confirms: published means on disk
        await channel.declare_queue("kept", durable=True)
        message = aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, routing_key="kept")
        await connection.close()
        broker.start()
        assert left.process is not None and left.epmd is not None
        assert left.process.wait(timeout=1) is not None
        assert left.epmd.wait(timeout=1) is not None
        assert broker.port != left.port
        connection = await aio_pika.connect(broker.amqp_url)
        queue = await (await connection.channel()).declare_queue("kept", durable=True, passive=True)
        kept = await queue.get(timeout=5)
        assert kept is not None and kept.body == b"kept"
        await connection.close()
    finally:
        broker.stop()
        left.stop()
    assert _running_in(directory) == set()  # neither broker nor either epmd


@pytest.mark.slow
def test_dev_serve_recovers_after_a_sigkill(services_dir: Path) -> None:
    workdir = services_dir / f"dev-{uuid.uuid4().hex[:8]}"
    first = ServerProcess(workdir, workers=1, dev=True).start()
    assert first.process is not None
    crashed = first.process.pid
    started = _session(crashed) - {crashed}  # its worker, Redis and PostgreSQL
    try:
        first.process.kill()  # the supervisor only, as a crash would
        first.process.wait()
        with ServerProcess(workdir, workers=1, dev=True) as second:
            (stub,) = stubs(second.address, 1)
            reply = stub.Score(scoring_pb2.ScoreRequest(transaction=transaction("after-crash")), timeout=20)
            assert reply.decision.ledger_sequence > 0
            deadline = time.monotonic() + 15
            while {pid for pid in started if _alive(pid)} and time.monotonic() < deadline:
                time.sleep(0.1)
            assert {pid for pid in started if _alive(pid)} == set()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(crashed, signal.SIGKILL)
