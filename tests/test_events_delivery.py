"""Acceptance of the decision events, end to end through failures (issue 18).

A live ``sentinel serve`` with two dispatchers records decisions from concurrent calls (refused and
repeated requests mixed in) while its receivers misbehave: one answers 500 for a while, one hangs past
the timeout, one is down (port closed) and comes up later; RabbitMQ is stopped mid-run and started
again; a dispatcher is killed with SIGKILL. Afterwards every acknowledged decision's event has reached
every matching receiver and the exchange, duplicates only under the same id and with the same body,
nothing for a decision that was not recorded, and each account's events arrived in the order its
decisions were made. One receiver is docs/examples/webhook_receiver.py itself, the README's example,
which also refuses a request with a wrong signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aio_pika
import asyncpg
import grpc
import pytest
from server_helpers import transaction

from sentinel.events.signing import signature_header
from sentinel.events.store import SubscriptionStore
from sentinel.ledger.migrate import migrate
from sentinel.localservices import LocalRabbitMQ
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port
from sentinel.v1 import decision_pb2, events_pb2, events_pb2_grpc, scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "webhook_receiver.py"
ACCOUNTS = 24
CALLS_PER_ACCOUNT = 6
TIMEOUT_S = 0.5  # events_webhook_timeout_s: the hanging receiver sleeps past it


class Receiver(ThreadingHTTPServer):
    """A webhook receiver in a thread: checks signatures; ``answer(elapsed)`` says what to do now
    ("ok", "fail": HTTP 500, "hang": answer after the timeout). Keeps the body of each event answered 2xx,
    in arrival order."""

    daemon_threads = True

    def __init__(self, port: int, answer: Callable[[float], str]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.answer = answer
        self.started_at = time.monotonic()
        self.secret = ""
        self.received: list[tuple[str, bytes]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *_: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        header = self.headers.get("Sentinel-Signature", "")
        fields = [part.split("=", 1) for part in header.split(",")]
        signed = dict(fields)["t"].encode() + b"." + body
        expected = hmac.new(self.server.secret.encode(), signed, hashlib.sha256).hexdigest()
        if expected not in [value for key, value in fields if key == "v1"]:
            with self.server.lock:
                self.server.bad_signatures += 1
            self.send_response(400)
            self.end_headers()
            return
        what = self.server.answer(time.monotonic() - self.server.started_at)
        if what == "hang":
            time.sleep(TIMEOUT_S * 2)
        if what != "ok":
            self.send_response(500)
            self.end_headers()
            return
        assert json.loads(body)["id"] == self.headers["Sentinel-Event-Id"]
        with self.server.lock:
            self.server.received.append((self.headers["Sentinel-Event-Id"], body))
        self.send_response(204)
        self.end_headers()


def _until(seconds: float, then: str, before: str) -> Callable[[float], str]:
    return lambda elapsed: before if elapsed < seconds else then


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {
        "flaky": Receiver(0, _until(4.0, "ok", "fail")),
        "hanging": Receiver(0, _until(4.0, "ok", "hang")),
    }
    yield made
    for receiver in made.values():
        receiver.shutdown()
        receiver.server_close()


async def _declare_queue(url: str, exchange: str) -> str:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(f"{exchange}.all", durable=True)
        await queue.bind(declared, routing_key="decision.recorded.*")
        return queue.name
    finally:
        await connection.close()


async def _drain(url: str, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    try:
        queue = await (await connection.channel()).get_queue(queue_name)
        received = []
        while (message := await queue.get(fail=False, timeout=5)) is not None:
            await message.ack()
            received.append(message)
        return received
    finally:
        await connection.close()


def _first_arrivals(arrivals: list[tuple[str, bytes]]) -> tuple[list[str], dict[str, set[bytes]]]:
    """The event ids in order of first arrival, and every body seen per id."""
    order: list[str] = []
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for identifier, body in arrivals:
        if identifier not in bodies:
            order.append(identifier)
        bodies[identifier].add(body)
    return order, bodies


async def _score_account(
    stub: scoring_pb2_grpc.ScoringServiceStub, account: str, acknowledged: dict[str, tuple[str, int]]
) -> None:
    """The account's calls one after another (each after the previous answer), a refused one and a
    repeat mixed in; acknowledged transaction id -> (account, position)."""
    for position in range(CALLS_PER_ACCOUNT):
        identifier = f"{account}-{position}"
        request = scoring_pb2.ScoreRequest(
            transaction=transaction(identifier, account=account, amount="120.00")
        )
        await stub.Score(request)
        acknowledged[identifier] = (account, position)
        if position == 2:  # refused (a negative amount): never recorded, so never announced
            bad = transaction(f"{account}-refused", account=account, amount="-5.00")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Score(scoring_pb2.ScoreRequest(transaction=bad))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        if position == 3:  # the same request again: answered from the ledger, no second event
            replayed = await stub.Score(request)
            assert replayed.decision.replayed
        await asyncio.sleep(0.15)


async def _eventually(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float) -> bool:
    """Whether ``condition`` holds within ``timeout_s`` (checked every 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = condition()
        if await held if inspect.isawaitable(held) else held:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


def _dispatcher_pids(server: ServerProcess) -> set[int]:
    return {int(str(e["pid"])) for e in server.log_events() if e.get("event") == "events_dispatcher_started"}


async def test_every_acknowledged_decision_reaches_every_subscriber_through_failures(
    tmp_path: Path,
    redis_url: str,
    database_url: str,
    rabbitmq_server: LocalRabbitMQ,
    receivers: dict[str, Receiver],
) -> None:
    await migrate(database_url)
    exchange = f"test.events.{uuid.uuid4().hex[:8]}"
    queue = await _declare_queue(rabbitmq_server.amqp_url, exchange)
    store = await SubscriptionStore.connect(database_url)
    down_port = free_port()
    try:
        for receiver in receivers.values():
            _, receiver.secret = await store.create_webhook(
                receiver.url,
                outcomes=[],
                event_types=[],
                description="",
                actor="test",
                allow_plain_http_loopback=True,
            )
        _, down_secret = await store.create_webhook(
            f"http://127.0.0.1:{down_port}/hook",
            outcomes=[],
            event_types=[],
            description="down",
            actor="test",
            allow_plain_http_loopback=True,
        )
    finally:
        await store.close()

    settings = {
        "redis_budget_ms": 2000,
        "ledger_commit_timeout_s": 20,
        "events_enabled": "true",
        "events_dispatchers": 2,
        "events_allow_plain_http_loopback": "true",
        "events_webhook_timeout_s": TIMEOUT_S,
        "events_retry_base_s": 0.05,
        "events_retry_cap_s": 0.5,
        "events_circuit_failures": 5,
        "events_circuit_cooldown_s": 0.3,
        "events_poll_interval_ms": 50,
        "events_amqp_url": rabbitmq_server.amqp_url,
        "events_amqp_exchange": exchange,
        "events_amqp_confirm_timeout_s": 2,
    }
    example: asyncio.subprocess.Process | None = None
    late: Receiver | None = None
    with ServerProcess(
        tmp_path / "server", redis_url=redis_url, database_url=database_url, workers=1, **settings
    ) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            # The README's receiver, subscribed through the EventsService, for APPROVE and REVIEW only.
            created = await events_pb2_grpc.EventsServiceStub(channel).CreateSubscription(
                events_pb2.CreateSubscriptionRequest(
                    url=f"http://127.0.0.1:{(example_port := free_port())}/hook",
                    outcomes=[decision_pb2.OUTCOME_APPROVE, decision_pb2.OUTCOME_REVIEW],
                    description="the README's example",
                )
            )
            assert created.secret.startswith("whsec_")
            example = await asyncio.create_subprocess_exec(
                sys.executable,
                str(EXAMPLE),
                str(example_port),
                env={**os.environ, "SENTINEL_WEBHOOK_SECRET": created.secret},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,  # its access log
            )
            listed = await events_pb2_grpc.EventsServiceStub(channel).ListSubscriptions(
                events_pb2.ListSubscriptionsRequest()
            )
            assert {s.subscription_id for s in listed.subscriptions} >= {
                created.subscription.subscription_id,
                "amqp",
            }

            for receiver in receivers.values():
                receiver.started_at = time.monotonic()
            acknowledged: dict[str, tuple[str, int]] = {}
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            traffic = asyncio.gather(
                *(_score_account(stub, f"acct-{n}", acknowledged) for n in range(ACCOUNTS))
            )

            await asyncio.sleep(0.5)
            await asyncio.to_thread(rabbitmq_server.stop)
            assert await _eventually(lambda: len(_dispatcher_pids(server)) == 2, timeout_s=10)
            victims = _dispatcher_pids(server)
            os.kill(min(victims), signal.SIGKILL)  # mid-round: its claimed deliveries go back to the others
            await asyncio.sleep(1.0)
            late = Receiver(down_port, lambda _elapsed: "ok")
            late.secret = down_secret
            await asyncio.to_thread(rabbitmq_server.start)
            await traffic
            assert len(acknowledged) == ACCOUNTS * CALLS_PER_ACCOUNT

            everyone = {**receivers, "down": late}
            connection = await asyncpg.connect(database_url)
            try:
                ledger = {
                    row["transaction_id"]: (f"evt_{row['sequence']}", row["outcome"])
                    for row in await connection.fetch(
                        "SELECT transaction_id, sequence, outcome FROM ledger.decisions"
                    )
                }
                assert set(ledger) == set(acknowledged)  # nothing refused was recorded

                async def outbox_empty() -> bool:
                    return await connection.fetchval("SELECT count(*) FROM ledger.event_deliveries") == 0

                assert await _eventually(outbox_empty, timeout_s=40)
            finally:
                await connection.close()

            # The README's example refuses a request signed with another secret.
            body = b'{"id":"evt_1"}'
            forged = urllib.request.Request(
                f"http://127.0.0.1:{example_port}/hook",
                data=body,
                headers={"Sentinel-Signature": signature_header(["whsec_wrong"], int(time.time()), body)},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                await asyncio.to_thread(urllib.request.urlopen, forged, timeout=5)
            assert refused.value.code == 400

        assert server.stop() == 0
        events = list(server.log_events())
        names = [e.get("event") for e in events]
        assert "events_dispatcher_died" in names  # the SIGKILL, restarted by the supervisor
        causes = {e.get("cause") for e in events if e.get("event") == "event_delivery_failed"}
        assert {"http_5xx", "timeout", "connect", "broker"} <= causes

    assert example is not None and late is not None
    example.terminate()
    example_lines = (await example.communicate())[0].decode().split("\n")
    late.shutdown()
    late.server_close()

    by_id = {event_id: (transaction_id, outcome) for transaction_id, (event_id, outcome) in ledger.items()}
    expected_ids = set(by_id)
    messages = await _drain(rabbitmq_server.amqp_url, queue)
    arrivals = {
        **{name: receiver.received for name, receiver in everyone.items()},
        "rabbitmq": [(str(m.message_id), m.body) for m in messages],
        "example": [(line.split()[0], b"") for line in example_lines if line],
    }
    bodies_by_id: dict[str, set[bytes]] = defaultdict(set)
    for name, received in arrivals.items():
        order, bodies = _first_arrivals(received)
        wanted = expected_ids if name != "example" else {i for i in expected_ids if by_id[i][1] != "DECLINE"}
        assert set(order) == wanted, (
            f"{name}: missing {sorted(wanted - set(order))[:5]}, extra {sorted(set(order) - wanted)[:5]}"
        )
        positions: dict[str, list[int]] = defaultdict(list)
        for identifier in order:
            account, position = acknowledged[by_id[identifier][0]]
            positions[account].append(position)
        assert all(p == sorted(p) for p in positions.values()), f"{name}: an account's events out of order"
        if name != "example":
            for identifier, seen in bodies.items():
                bodies_by_id[identifier] |= seen
    assert all(
        len(seen) == 1 for seen in bodies_by_id.values()
    )  # a duplicate is the same event, byte for byte
    assert all(receiver.bad_signatures == 0 for receiver in everyone.values())
