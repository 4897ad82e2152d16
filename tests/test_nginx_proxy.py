"""The deployment's nginx (deploy/nginx/sentinel.conf) in front of two SentinelStream instances.

The configuration under test is the deployment file itself, with only the instances' addresses, the
listen address, the TLS file paths and the instances' TLS name substituted (``render_proxy_config``
fails when one of them is no longer where it was, so the two cannot drift). Debian's nginx terminates
the clients' TLS and re-encrypts to the instances (both on the session's Redis and one database, with a
private CA); the tests score through it: calls reach both instances, one idempotency key sent twice at
once is decided once, 1,000 concurrent transactions on one account spread over both instances are all
applied to its state, SIGTERM to one instance under load costs no call of a client that retries as the
client library does (its health says NOT_SERVING while it still answers), and a worker killed mid-call
costs only the calls it held, which the clients can retry.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_helpers import account_state, ledger_ids, new_database, transaction
from transport_helpers import tls_credentials

from sentinel.bench.server_metrics import scrape_sample
from sentinel.certificates import DevPki, ensure_dev_pki
from sentinel.clients import channel_options
from sentinel.localservices import LocalNginx, LocalPostgres, LocalRedis, nginx_binary
from sentinel.proxy_config import DEPLOYMENT_NGINX_CONFIG, render_proxy_config
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port
from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (deploy/ensure-system-packages.sh --tests)"
)

TEMPLATE = DEPLOYMENT_NGINX_CONFIG


@dataclass
class Proxy:
    """nginx on ``address`` in front of ``instances``; ``database_url``: their ledger."""

    address: str
    instances: list[ServerProcess]
    database_url: str
    credentials: grpc.ChannelCredentials

    def stub(self, *, retrying: bool = False) -> tuple[grpc.Channel, scoring_pb2_grpc.ScoringServiceStub]:
        """A new TLS connection to nginx; ``retrying``: with the client library's retry policy of Score."""
        options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1)]
        if retrying:
            options += channel_options()
        channel = grpc.secure_channel(self.address, self.credentials, options=options)
        return channel, scoring_pb2_grpc.ScoringServiceStub(channel)


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, redis_server: LocalRedis, postgres_server: LocalPostgres
) -> Iterator[Proxy]:
    """Two instances (one worker each, TLS from a private CA, one Redis and one database) behind nginx."""
    workdir = tmp_path_factory.mktemp("nginx-proxy")
    pki = ensure_dev_pki(workdir / "pki")
    credentials = tls_credentials(pki)
    database_url = new_database(postgres_server, "nginx_proxy")
    instances = [
        ServerProcess(
            workdir / f"instance-{n}",
            workers=1,
            credentials=credentials,
            redis_url=redis_server.url,
            database_url=database_url,
            tls_cert_file=pki.server_cert,
            tls_key_file=pki.server_key,
            redis_budget_ms=2000,
            ledger_commit_timeout_s=20,
            shutdown_grace_s=5,
            claim_takeover_s=2,  # a retry of a call a killed worker held waits this long for its decision
        )
        for n in (1, 2)
    ]
    port = free_port()
    config = render_proxy_config(
        TEMPLATE.read_text(), listen_port=port, instances=[i.address for i in instances], pki=pki
    )
    nginx = LocalNginx(workdir / "nginx", config, port)
    try:
        for instance in instances:
            instance.start()
        nginx.start()
        yield Proxy(f"127.0.0.1:{port}", instances, database_url, credentials)
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()


def score_calls(instance: ServerProcess) -> float:
    """Score calls the instance answered OK so far."""
    return scrape_sample(instance.metrics_url, "sentinel_calls_total", method="Score", code="OK")


def test_the_deployment_file_renders_with_every_substitution_in_place() -> None:
    pki = DevPki(*(Path(f"/pki/{name}") for name in ("d", "ca", "cert", "key", "ccert", "ckey")))
    template = TEMPLATE.read_text()
    rendered = render_proxy_config(template, listen_port=1, instances=["a:1", "b:2", "c:3"], pki=pki)
    assert rendered.count("max_fails=2 fail_timeout=10s;") == 3
    directives = "".join(line for line in rendered.splitlines(True) if not line.lstrip().startswith("#"))
    assert "sentinel-" not in directives and "/etc/nginx" not in directives
    with pytest.raises(ValueError, match="listen 443"):
        render_proxy_config(
            template.replace("listen 443 ssl http2;", "listen 8443 ssl http2;"),
            listen_port=1,
            instances=["a:1"],
            pki=pki,
        )


def test_calls_through_the_proxy_reach_both_instances(proxy: Proxy) -> None:
    before = [score_calls(instance) for instance in proxy.instances]
    channel, stub = proxy.stub()
    with channel:
        answers = [
            stub.Score(scoring_pb2.ScoreRequest(transaction=transaction(f"spread-{i}", f"A{i}")), timeout=20)
            for i in range(20)
        ]
    assert [a.decision.transaction_id for a in answers] == [f"spread-{i}" for i in range(20)]
    served = [score_calls(instance) - b for instance, b in zip(proxy.instances, before, strict=True)]
    assert sum(served) == 20
    assert all(count > 0 for count in served), served


def test_one_idempotency_key_sent_twice_at_once_is_decided_once(proxy: Proxy) -> None:
    request = scoring_pb2.ScoreRequest(
        transaction=transaction("twice-1", "T1", idempotency_key="key-twice-1")
    )
    channels = [proxy.stub() for _ in range(2)]
    start = threading.Barrier(2)

    def send(stub: scoring_pb2_grpc.ScoringServiceStub) -> scoring_pb2.ScoreResponse:
        start.wait()
        return stub.Score(request, timeout=30)

    try:
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(send, [stub for _channel, stub in channels])
    finally:
        for channel, _stub in channels:
            channel.close()
    assert first.decision.ledger_sequence == second.decision.ledger_sequence
    assert first.decision.risk_score == second.decision.risk_score
    assert sorted([first.decision.replayed, second.decision.replayed]) == [False, True]
    assert ledger_ids(proxy.database_url, ["twice-1"]) == {"twice-1": 1}


def scoring_calls(instance: ServerProcess) -> float:
    """Score and ScoreBatch calls the instance answered OK so far."""
    return score_calls(instance) + scrape_sample(
        instance.metrics_url, "sentinel_calls_total", method="ScoreBatch", code="OK"
    )


def test_a_thousand_concurrent_transactions_on_one_account_across_both_instances_are_all_applied(
    proxy: Proxy, redis_server: LocalRedis
) -> None:
    """One account, 500 Score calls and 25 ScoreBatch calls of 20 at once over 8 connections to nginx:
    both instances serve some, and the account's state counts every acknowledged decision once, with
    their amounts (one event time, so the velocity windows do not decay: they hold exact sums)."""
    before = [scoring_calls(instance) for instance in proxy.instances]
    event_time = int(time.time()) - 10
    transactions = [transaction(f"hot-{i}", "HOT-PROXY", amount=f"{i % 10 + 1}.00") for i in range(1_000)]
    for message in transactions:
        message.event_time.FromSeconds(event_time)
    unary, batched = transactions[:500], transactions[500:]
    channels = [proxy.stub() for _ in range(8)]

    def score(index: int) -> list[decision_pb2.Decision]:
        request = scoring_pb2.ScoreRequest(transaction=unary[index])
        return [channels[index % 8][1].Score(request, timeout=60).decision]

    def score_batch(index: int) -> list[decision_pb2.Decision]:
        request = scoring_pb2.ScoreBatchRequest(transactions=batched[index * 20 : (index + 1) * 20])
        results = channels[index % 8][1].ScoreBatch(request, timeout=60).results
        assert all(result.HasField("decision") for result in results), [r.error for r in results]
        return [result.decision for result in results]

    calls = [(score, i) for i in range(500)] + [(score_batch, i) for i in range(25)]
    random.Random(21).shuffle(calls)
    try:
        with ThreadPoolExecutor(64) as pool:
            answers = [d for ds in pool.map(lambda call: call[0](call[1]), calls) for d in ds]
    finally:
        for channel, _stub in channels:
            channel.close()

    assert sorted(d.transaction_id for d in answers) == sorted(t.transaction_id for t in transactions)
    assert [d.transaction_id for d in answers if d.degraded] == []
    assert all(d.ledger_sequence > 0 and not d.replayed for d in answers)
    served = [scoring_calls(instance) - b for instance, b in zip(proxy.instances, before, strict=True)]
    assert sum(served) == 525 and all(count > 0 for count in served), served
    state = account_state(redis_server.url, "HOT-PROXY")
    assert state is not None and state.count == 1_000
    total = sum(i % 10 + 1 for i in range(1_000))
    assert state.velocity_count == [1_000.0] * len(state.velocity_count)
    assert state.velocity_amount == pytest.approx([total] * len(state.velocity_amount), rel=1e-12)
    assert sum(ledger_ids(proxy.database_url, [t.transaction_id for t in transactions]).values()) == 1_000


class Load:
    """Four callers scoring through nginx without pause (bounded: 2,000 calls each) until ``stop``; the
    status codes of their calls, those of the calls that ended after ``mark``, and the failed requests.
    ``retrying``: the callers' channels retry Score as the client library's do (sentinel.clients)."""

    def __init__(self, proxy: Proxy, name: str, *, retrying: bool = False) -> None:
        self.results: Counter[str] = Counter()
        self.after_mark: Counter[str] = Counter()
        self.failed: list[scoring_pb2.ScoreRequest] = []
        self._proxy, self._name, self._retrying = proxy, name, retrying
        self._done, self._marked, self._lock = threading.Event(), threading.Event(), threading.Lock()
        self._pool = ThreadPoolExecutor(4)
        self._futures = [self._pool.submit(self._caller, n) for n in range(4)]

    def _caller(self, n: int) -> None:
        channel, stub = self._proxy.stub(retrying=self._retrying)
        with channel:
            for i in range(2_000):
                if self._done.is_set():
                    return
                txn = transaction(f"{self._name}-{n}-{i}", f"{self._name}-{n}-{i % 7}")
                request = scoring_pb2.ScoreRequest(transaction=txn)
                try:
                    stub.Score(request, timeout=20)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = f"{exc.code().name}: {exc.details()}"
                    self.failed.append(request)
                with self._lock:
                    self.results[code] += 1
                    if self._marked.is_set():
                        self.after_mark[code] += 1

    def wait_for_calls(self, count: int, *, after_mark: bool = False) -> None:
        """Until ``count`` calls have ended (after the mark); AssertionError after two minutes."""
        counts = self.after_mark if after_mark else self.results
        deadline = time.monotonic() + 120
        while sum(counts.values()) < count:
            assert time.monotonic() < deadline, f"only {sum(counts.values())} of {count} calls in 2 minutes"
            time.sleep(0.05)

    def mark(self) -> None:
        self._marked.set()

    def stop(self) -> None:
        self._done.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()


def test_sigterm_to_one_instance_under_load_costs_no_call(proxy: Proxy) -> None:
    """One instance is stopped (SIGTERM: it drains) while four callers score: every call succeeds, those
    in flight on it finish, the rest go to the other instance.

    The callers retry as the client library does: gRPC core answers CANCELLED, at the moment shutdown
    begins, every call the instance has received but not yet handed to a handler (and any that reaches
    it before nginx has read the GOAWAY), and nginx passes that on as an answer (HTTP 200), never
    resending it; no handler saw those calls, and their idempotency keys make the retry safe anyway."""
    stopping, survivor = proxy.instances[1], proxy.instances[0]
    before_survivor = score_calls(survivor)
    # The instance's own health, watched on a direct connection: the stream is a call on the instance,
    # so NOT_SERVING arriving on it (and the stream then ending OK) means health turned before the
    # instance stopped taking calls, as a health-checking balancer needs.
    health_channel = grpc.secure_channel(stopping.address, proxy.credentials)
    watch = health_pb2_grpc.HealthStub(health_channel).Watch(health_pb2.HealthCheckRequest(), timeout=120)
    load = Load(proxy, "term", retrying=True)
    try:
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        load.wait_for_calls(40)
        assert stopping.stop() == 0  # SIGTERM; returns once it has drained and exited
        load.mark()
        load.wait_for_calls(40, after_mark=True)
        statuses = [answer.status for answer in watch]  # ends without an error: the server closed it
    finally:
        load.stop()
        health_channel.close()
        stopping.start()  # the same port again, for the later tests of the module
    assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert set(load.results) == {"OK"}, load.results
    assert score_calls(survivor) - before_survivor >= load.after_mark["OK"] >= 40


def test_a_killed_worker_costs_only_its_calls_in_flight(proxy: Proxy) -> None:
    """SIGKILL to one instance's worker under load: the calls it held fail with UNAVAILABLE (nginx
    cannot resend a streamed gRPC body), at most one per caller; every later call succeeds (nginx
    skips the closed port); each failed call, sent again with its idempotency key, is answered; the supervisor
    restarts the worker and counts it (sentinel_worker_restarts_total)."""
    crashing = proxy.instances[1]
    restarts = scrape_sample(crashing.metrics_url, "sentinel_worker_restarts_total")
    (worker,) = crashing.worker_pids()
    load = Load(proxy, "kill")
    try:
        load.wait_for_calls(40)
        os.kill(worker, signal.SIGKILL)
        load.mark()
        load.wait_for_calls(40, after_mark=True)
    finally:
        load.stop()
    failed = sum(count for code, count in load.results.items() if code != "OK")
    assert set(load.results) <= {"OK", "UNAVAILABLE: Received http2 header with status: 502"}, load.results
    assert failed <= 4  # the calls in flight on the killed worker: one per caller at most
    channel, stub = proxy.stub()
    with channel:
        for request in load.failed:
            answer = stub.Score(request, timeout=30)
            assert answer.decision.transaction_id == request.transaction.transaction_id
    assert len(load.failed) == failed
    assert scrape_sample(crashing.metrics_url, "sentinel_worker_restarts_total") == restarts + 1
