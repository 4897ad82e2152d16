"""Authentication and roles against a real `sentinel serve` with ``auth_mode = jwt`` and a JWKS file made by
`sentinel token keygen`: every refused token is UNAUTHENTICATED with its reason and nothing of the token,
a wrong role is PERMISSION_DENIED, the ledger and the rules history name the caller, keys rotate without a
restart, and the log never holds a token. Also: the role table against the contract, mTLS identities on
an in-process TLS server, the token cache, the JWKS URL's refresh limit and the settings' checks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import importlib
import json
import os
import pkgutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from server_helpers import new_database, open_channels, transaction

import sentinel.v1
from sentinel import cli
from sentinel.certificates import DevPki, ensure_dev_pki
from sentinel.config import ConfigError, load_settings
from sentinel.localservices import LocalPostgres, LocalRedis
from sentinel.server.auth import Authenticator, AuthInterceptor
from sentinel.server.identity import current_caller
from sentinel.server.roles import METHOD_ROLES, ROLES, public_methods
from sentinel.server.signing_keys import JwksKeys, JwksUrl, SharedSecret, UnknownSigningKey
from sentinel.server.token_commands import add_key, issue_token
from sentinel.server.tokens import TokenRefused, TokenValidator
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import (
    decision_pb2,
    ledger_pb2,
    ledger_pb2_grpc,
    rules_pb2,
    rules_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)

ISSUER = "https://issuer.sentinel.test"
AUDIENCE = "sentinel-scoring"
KID = "k1"
UNAUTHENTICATED, PERMISSION_DENIED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED
tokens_sent: list[str] = []  # every token this module sends: none may show up in the server's log


@dataclass(frozen=True)
class KeyDir:
    directory: Path
    jwks: Path
    private_key: Path

    def key(self, kid: str = KID) -> rsa.RSAPrivateKey:
        loaded = serialization.load_pem_private_key(
            (self.directory / f"{kid}.private.pem").read_bytes(), None
        )
        assert isinstance(loaded, rsa.RSAPrivateKey)
        return loaded


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyDir:
    """A key pair and its JWKS, made by `sentinel token keygen`."""
    directory = tmp_path_factory.mktemp("keys")
    assert cli.main(["token", "keygen", "--out", str(directory), "--kid", KID]) == 0
    private_key = directory / f"{KID}.private.pem"
    assert private_key.stat().st_mode & 0o777 == 0o600
    return KeyDir(directory, directory / "jwks.json", private_key)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    keys: KeyDir,
    redis_server: LocalRedis,
    postgres_server: LocalPostgres,
) -> Iterator[ServerProcess]:
    """One worker with auth_mode = jwt on the session's Redis and a database of its own."""
    database_url = new_database(postgres_server, f"auth_{os.getpid()}")
    with ServerProcess(
        tmp_path_factory.mktemp("auth-server"),
        workers=1,
        redis_url=redis_server.url,
        database_url=database_url,
        redis_budget_ms=2000,
        ledger_commit_timeout_s=20,
        auth_mode="jwt",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_file=keys.jwks,
        auth_leeway_s=5,
    ) as process:
        yield process


def channel(address: str) -> grpc.Channel:
    opened = grpc.insecure_channel(address)
    open_channels.append(opened)
    return opened


def bearer(token: str) -> list[tuple[str, str]]:
    tokens_sent.append(token)
    return [("authorization", f"Bearer {token}")]


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims of a scorer, with ``changes`` (None removes a claim)."""
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "payments-svc", "roles": ["scorer"], "iat": now}
    base["exp"] = now + 600
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def signed(keys: KeyDir, kid: str = KID, **changes: Any) -> str:
    return jwt.encode(claims(**changes), keys.key(kid), algorithm="RS256", headers={"kid": kid})


def handmade(header: dict[str, Any], body: dict[str, Any], sign: Any = None) -> str:
    """A compact JWT written by hand (PyJWT refuses to make the malicious ones): ``sign(signing_input)``
    gives the signature bytes, none when None."""

    def segment(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = segment(json.dumps(header).encode()) + b"." + segment(json.dumps(body).encode())
    signature = segment(sign(signing_input)) if sign else b""
    return (signing_input + b"." + signature).decode()


def score(
    address: str, metadata: list[tuple[str, str]] | None, transaction_id: str, event_time: int = 0
) -> decision_pb2.Decision:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel(address))
    request = scoring_pb2.ScoreRequest(transaction=transaction(transaction_id, "C-auth"))
    if event_time:  # the same transaction again (a retry)
        request.transaction.event_time.FromSeconds(event_time)
    return stub.Score(request, metadata=metadata, timeout=30).decision


def refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


# --------------------------------------------------------------------------------------- the contract
def test_the_role_table_covers_every_method_of_the_contract() -> None:
    """A method added to a sentinel.v1 service is refused to everyone until it is given roles: this
    fails until it is."""
    modules = [
        importlib.import_module(f"sentinel.v1.{module.name}")
        for module in pkgutil.iter_modules(sentinel.v1.__path__)
        if module.name.endswith("_pb2")
    ]
    contract = {
        f"/{service.full_name}/{method.name}"
        for module in modules
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert len(contract) >= 13 and "/sentinel.v1.RulesService/RollbackRule" in contract
    assert contract <= METHOD_ROLES.keys(), sorted(contract - METHOD_ROLES.keys())
    assert all(roles and roles <= ROLES for roles in METHOD_ROLES.values())
    assert public_methods(["grpc.health.v1.Health"]) == {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }


# ------------------------------------------------------------------------------------------- refusals
def test_every_unacceptable_token_is_unauthenticated_with_its_reason(
    server: ServerProcess, keys: KeyDir
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65_537, key_size=2048)
    public_pem = (
        keys.key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    cases: dict[str, tuple[list[tuple[str, str]] | None, str]] = {
        "missing": (None, "missing bearer token"),
        "not bearer": ([("authorization", "Basic c2NvcmVyOnNlY3JldA==")], "authorization must be"),
        "malformed": (bearer("eyJhbGciOi.not-a-token.at-all"), "malformed token"),
        "expired": (bearer(signed(keys, exp=now - 60)), "token expired"),
        "not yet valid": (bearer(signed(keys, nbf=now + 600)), "token not yet valid"),
        "wrong audience": (bearer(signed(keys, aud="another-service")), "audience not accepted"),
        "wrong issuer": (bearer(signed(keys, iss="https://evil.test")), "issuer not accepted"),
        "no subject": (bearer(signed(keys, sub=None)), "token has no sub claim"),
        "alg none": (
            bearer(handmade({"alg": "none", "typ": "JWT", "kid": KID}, claims())),
            "signing algorithm not accepted",
        ),
        "HS256 with the public key": (
            bearer(
                handmade(
                    {"alg": "HS256", "typ": "JWT", "kid": KID},
                    claims(),
                    lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
                )
            ),
            "signing algorithm not accepted",
        ),
        "unknown kid": (
            bearer(jwt.encode(claims(), other_key, algorithm="RS256", headers={"kid": "k-unknown"})),
            "unknown signing key",
        ),
        "another key under our kid": (
            bearer(jwt.encode(claims(), other_key, algorithm="RS256", headers={"kid": KID})),
            "signature does not verify",
        ),
        "roles not a list": (bearer(signed(keys, roles="scorer")), "roles claim must be a list of strings"),
    }
    for case, (metadata, reason) in cases.items():
        error = refusal(
            lambda metadata=metadata, case=case: score(server.address, metadata, f"refused-{case}")
        )
        assert error.code() == UNAUTHENTICATED, (case, error)
        assert reason in (error.details() or ""), (case, error.details())
        for _, value in metadata or ():
            assert value.split()[-1] not in (error.details() or ""), case


def test_a_valid_token_with_the_wrong_role_is_permission_denied(server: ServerProcess, keys: KeyDir) -> None:
    reader = bearer(signed(keys, sub="auditor", roles=["ledger-reader"]))
    error = refusal(lambda: score(server.address, reader, "wrong-role-1"))
    assert error.code() == PERMISSION_DENIED
    assert error.details() == "/sentinel.v1.ScoringService/Score needs the role scorer"
    viewer = bearer(signed(keys, sub="analyst", roles=["rules-viewer"]))
    rules = rules_pb2_grpc.RulesServiceStub(channel(server.address))
    assert rules.ListRules(rules_pb2.ListRulesRequest(), metadata=viewer, timeout=10).rules
    error = refusal(
        lambda: rules.DeleteRule(rules_pb2.DeleteRuleRequest(rule_id="x"), metadata=viewer, timeout=10)
    )
    assert error.code() == PERMISSION_DENIED
    assert "rules-admin" in (error.details() or "")
    nobody = bearer(signed(keys, sub="nobody", roles=None))
    assert refusal(lambda: score(server.address, nobody, "no-roles")).code() == PERMISSION_DENIED


# ------------------------------------------------------------------------------------- accepted calls
def test_the_ledger_names_who_scored_each_decision(
    server: ServerProcess, keys: KeyDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token from `sentinel token issue` scores; the stored decision (GetDecision) names its subject, and
    a replay by another caller returns the original caller."""
    assert cli.main(
        ["token", "issue", "--role", "scorer", "--subject", "payments-svc", "--ttl", "5m", "--key",
         str(keys.private_key), "--kid", KID, "--issuer", ISSUER, "--audience", AUDIENCE]
    ) == 0  # fmt: skip
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    scorer = bearer(token)
    event_time = int(time.time()) - 10
    decision = score(server.address, scorer, "caller-1", event_time)
    assert decision.caller == "payments-svc" and not decision.replayed

    stub = scoring_pb2_grpc.ScoringServiceStub(channel(server.address))
    batch = scoring_pb2.ScoreBatchRequest(
        transactions=[transaction(f"caller-b{i}", "C-auth") for i in range(3)]
    )
    results = stub.ScoreBatch(batch, metadata=scorer, timeout=30).results
    assert [result.decision.caller for result in results] == ["payments-svc"] * 3
    streamed = stub.ScoreStream(
        iter([scoring_pb2.ScoreStreamRequest(transaction=transaction("caller-s1", "C-auth"))]),
        metadata=bearer(signed(keys, sub="stream-svc")),
        timeout=30,
    )
    assert [response.decision.caller for response in streamed] == ["stream-svc"]

    again = score(server.address, bearer(signed(keys, sub="another-svc")), "caller-1", event_time)
    assert again.replayed and again.caller == "payments-svc"

    ledger = ledger_pb2_grpc.LedgerServiceStub(channel(server.address))
    reader = bearer(signed(keys, sub="auditor", roles=["ledger-reader"]))
    for transaction_id, caller in (("caller-1", "payments-svc"), ("caller-b2", "payments-svc")):
        entry = ledger.GetDecision(
            ledger_pb2.GetDecisionRequest(transaction_id=transaction_id), metadata=reader, timeout=10
        ).entry
        assert entry.decision.caller == caller and entry.sequence > 0


def test_health_is_public_and_reflection_needs_a_token(server: ServerProcess, keys: KeyDir) -> None:
    opened = channel(server.address)
    health = health_pb2_grpc.HealthStub(opened)
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    reflection = reflection_pb2_grpc.ServerReflectionStub(opened)
    request = reflection_pb2.ServerReflectionRequest(list_services="")

    def services(metadata: list[tuple[str, str]] | None) -> list[str]:
        (answer,) = reflection.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
        return [service.name for service in answer.list_services_response.service]

    error = refusal(lambda: services(None))
    assert error.code() == UNAUTHENTICATED and error.details() == "missing bearer token"
    assert "sentinel.v1.ScoringService" in services(
        bearer(signed(keys, sub="developer", roles=["rules-viewer"]))
    )


def test_a_new_key_is_accepted_without_a_restart(server: ServerProcess, keys: KeyDir) -> None:
    """Rotation: keygen adds a key under a new kid to the served JWKS file; its first token is accepted."""
    rotated = "k2-" + os.urandom(3).hex()
    key_path, _ = add_key(keys.directory, "ES256", rotated)
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    token = issue_token(
        subject="rotated-svc", roles=["scorer"], ttl_s=300, issuer=ISSUER, audience=AUDIENCE,
        key=private_key, algorithm="ES256", kid=rotated,
    )  # fmt: skip
    assert score(server.address, bearer(token), "rotated-1").caller == "rotated-svc"
    assert score(server.address, bearer(signed(keys, sub="old-key-svc")), "rotated-2").caller == "old-key-svc"


def test_rule_changes_record_the_caller_as_author(server: ServerProcess, keys: KeyDir) -> None:
    rules = rules_pb2_grpc.RulesServiceStub(channel(server.address))
    admin = bearer(signed(keys, sub="alice", roles=["rules-admin"]))
    rule = rules_pb2.Rule(
        rule_id="auth-test-rule",
        expression="amount > 100000",
        action=decision_pb2.RULE_ACTION_REVIEW,
        priority=10,
        severity=0.1,
        mode=rules_pb2.RULE_MODE_SHADOW,
        description="authentication test",
    )
    put = rules.PutRule(rules_pb2.PutRuleRequest(rule=rule, comment="first"), metadata=admin, timeout=10)
    assert put.rule.author == "alice"
    same = rules_pb2.PutRuleRequest(rule=rule, author="alice", comment="again")
    assert rules.PutRule(same, metadata=admin, timeout=10).rule.author == "alice"
    error = refusal(
        lambda: rules.PutRule(
            rules_pb2.PutRuleRequest(rule=rule, author="mallory"), metadata=admin, timeout=10
        )
    )
    assert error.code() == PERMISSION_DENIED and "'alice'" in (error.details() or "")
    versions = rules.ListRuleVersions(
        rules_pb2.ListRuleVersionsRequest(rule_id=rule.rule_id), metadata=admin, timeout=10
    ).versions
    assert [version.author for version in versions] == ["alice", "alice"]


def test_the_log_names_refusals_and_callers_but_no_token(server: ServerProcess, keys: KeyDir) -> None:
    """Runs after the others (file order) but sends its own tokens, so it checks something on its own."""
    expired = bearer(signed(keys, exp=int(time.time()) - 60))
    refusal(lambda: score(server.address, expired, "log-1"))
    score(server.address, bearer(signed(keys, sub="log-svc")), "log-2")
    deadline = time.monotonic() + 10
    while True:
        events = list(server.log_events())
        refused = [
            e for e in events if e.get("event") == "call_refused" and e.get("reason") == "token expired"
        ]
        decided = [e for e in events if e.get("event") == "decision" and e.get("caller") == "log-svc"]
        if (refused and decided) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert refused and refused[-1]["code"] == "UNAUTHENTICATED"
    assert refused[-1]["method"] == "/sentinel.v1.ScoringService/Score"
    assert decided
    text = server.log_file.read_text(errors="replace")
    signatures = [token.rsplit(".", 1)[-1] for token in tokens_sent]
    leaked = [token for token, signature in zip(tokens_sent, signatures, strict=True) if token in text]
    leaked += [signature for signature in signatures if signature and signature in text]
    assert len(tokens_sent) >= 2 and not leaked


# ------------------------------------------------------------------------------------ mTLS identities
@contextlib.asynccontextmanager
async def tls_server(
    pki: DevPki, tokens: TokenValidator, certificate_roles: dict[str, list[str]]
) -> AsyncIterator[int]:
    """A grpc.aio server in this process requiring client certificates, with the AuthInterceptor in front
    of methods that answer with the caller they were called by (Watch: a streaming handler that writes
    with ``context.write``, as the health Watch does); yields its port."""
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(Authenticator(tokens, certificate_roles), frozenset())]
    )

    async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        caller = current_caller()
        return f"{caller.subject}/{caller.source}".encode()

    async def watch(request: bytes, context: grpc.aio.ServicerContext) -> None:
        await context.write(await whoami(request, context))
        await context.write(b"again")

    handler = grpc.unary_unary_rpc_method_handler(whoami)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("sentinel.v1.ScoringService", {"Score": handler}),
            grpc.method_handlers_generic_handler("sentinel.v1.LedgerService", {"GetBalance": handler}),
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health", {"Watch": grpc.unary_stream_rpc_method_handler(watch)}
            ),
        )
    )
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
        root_certificates=pki.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


async def test_a_mapped_client_certificate_stands_in_for_a_token(tmp_path: Path) -> None:
    """Under mTLS, a caller without a token is its certificate's identity when auth_certificate_roles maps
    it, with those roles; a token still wins; an unmapped certificate alone is refused."""
    pki = ensure_dev_pki(tmp_path / "pki")
    secret = tmp_path / "secret"
    secret.write_bytes(os.urandom(32).hex().encode())
    tokens = TokenValidator(
        SharedSecret(secret),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["HS256"],
        leeway_s=0,
        cache_size=10,
    )
    client = grpc.ssl_channel_credentials(
        pki.ca_cert.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )
    token = jwt.encode(claims(sub="token-svc"), secret.read_bytes(), algorithm="HS256")
    for mapped in (True, False):
        roles = {"sentinel-dev-client" if mapped else "another-client": ["scorer"]}
        async with (
            tls_server(pki, tokens, roles) as port,
            grpc.aio.secure_channel(f"localhost:{port}", client) as opened,
        ):
            score_call = opened.unary_unary("/sentinel.v1.ScoringService/Score")
            assert await score_call(b"", metadata=bearer(token), timeout=10) == b"token-svc/jwt"
            if not mapped:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await score_call(b"", timeout=10)
                assert refused.value.code() == UNAUTHENTICATED
                assert refused.value.details() == "missing bearer token"
                continue
            assert await score_call(b"", timeout=10) == b"sentinel-dev-client/certificate"
            watched = opened.unary_stream("/grpc.health.v1.Health/Watch")(b"", timeout=10)
            assert [answer async for answer in watched] == [b"sentinel-dev-client/certificate", b"again"]
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await opened.unary_unary("/sentinel.v1.LedgerService/GetBalance")(b"", timeout=10)
            assert denied.value.code() == PERMISSION_DENIED


# ----------------------------------------------------------------------------- the parts on their own
class CountingKeys:
    """A SharedSecret that counts its lookups (each is one signature check to come)."""

    def __init__(self, secret: Path) -> None:
        self.inner = SharedSecret(secret)
        self.lookups = 0
        self.generation = 0

    async def key_for(self, kid: str | None) -> jwt.PyJWK | bytes:
        self.lookups += 1
        return await self.inner.key_for(kid)


async def test_checked_tokens_are_cached_until_they_expire_or_the_keys_change(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 40 + "\n")
    keys, now = CountingKeys(secret), [float(int(time.time()))]  # the cache's clock, moved by hand
    tokens = TokenValidator(
        keys, issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"], leeway_s=5, cache_size=2,
        clock=lambda: now[0],
    )  # fmt: skip
    issued = {
        name: jwt.encode(claims(sub=name, iat=None, exp=int(now[0]) + 60), b"s" * 40, algorithm="HS256")
        for name in ("a", "b", "c")
    }
    assert (await tokens.caller(issued["a"])).subject == "a"
    assert (await tokens.caller(issued["a"])).roles == {"scorer"}
    assert keys.lookups == 1  # the second call was answered from the cache
    await tokens.caller(issued["b"])
    await tokens.caller(issued["a"])  # a is now the most recently used
    await tokens.caller(issued["c"])  # b goes
    assert keys.lookups == 3
    await tokens.caller(issued["a"])
    assert keys.lookups == 3
    await tokens.caller(issued["b"])
    assert keys.lookups == 4
    keys.generation += 1  # a key changed: every cached token is checked again
    await tokens.caller(issued["b"])
    assert keys.lookups == 5
    now[0] += 64  # within the leeway of exp: cached still
    await tokens.caller(issued["b"])
    assert keys.lookups == 5
    now[0] += 2  # past exp + leeway by the cache's clock: the token is checked again (by PyJWT's clock)
    await tokens.caller(issued["b"])
    assert keys.lookups == 6
    expired = jwt.encode(claims(exp=int(time.time()) - 60), b"s" * 40, algorithm="HS256")
    with pytest.raises(TokenRefused, match="token expired"):
        await tokens.caller(expired)


async def test_a_jwks_url_is_fetched_again_on_an_unknown_kid_at_most_once_per_interval(keys: KeyDir) -> None:
    served = {"document": json.loads(keys.jwks.read_text()), "fetches": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served["fetches"] += 1
            body = json.dumps(served["document"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        now = [0.0]
        url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
        jwks = JwksKeys(JwksUrl(url, min_interval_s=10), refresh_s=300, clock=lambda: now[0])
        assert served["fetches"] == 1 and jwks.generation == 0  # read once at the start
        assert isinstance(await jwks.key_for(KID), jwt.PyJWK)
        extra = rsa.generate_private_key(public_exponent=65_537, key_size=2048)
        new_key = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(extra.public_key())), "kid": "k-new"}
        served["document"] = {"keys": [*served["document"]["keys"], new_key]}
        for moment in (0.0, 5.0, 9.9):  # within the interval of the last fetch: none, however many kids
            now[0] = moment
            for _ in range(10):
                with pytest.raises(UnknownSigningKey, match="unknown signing key"):
                    await jwks.key_for("k-new")
        assert served["fetches"] == 1
        now[0] = 10.5
        assert isinstance(await jwks.key_for("k-new"), jwt.PyJWK)
        assert served["fetches"] == 2 and jwks.generation == 1
        now[0] = 12.0
        with pytest.raises(UnknownSigningKey):
            await jwks.key_for("k-later")
        assert served["fetches"] == 2
        served["document"] = {"keys": [new_key]}  # k1 retired
        now[0] = 400.0  # the periodic read: a removed key stops being accepted
        with pytest.raises(UnknownSigningKey):
            await jwks.key_for(KID)
        assert served["fetches"] == 3 and jwks.generation == 2
        with pytest.raises(UnknownSigningKey, match="names no signing key"):
            await jwks.key_for(None)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_settings_refuse_unsafe_algorithms_and_incomplete_configurations(tmp_path: Path) -> None:
    jwt_mode: dict[str, Any] = {"auth_mode": "jwt", "auth_issuer": ISSUER, "auth_audience": AUDIENCE}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"auth_mode": "jwt"}, "auth_issuer [defaults]: required with auth_mode = jwt"),
        ({**jwt_mode, "auth_jwks_file": tmp_path, "auth_algorithms": ["none"]}, "alg none never is"),
        ({**jwt_mode, "auth_jwks_file": tmp_path, "auth_algorithms": ["RS256", "HS256"]}, "cannot be mixed"),
        ({**jwt_mode, "auth_algorithms": ["HS256"]}, "HS256 needs auth_hs256_secret_file"),
        ({**jwt_mode, "auth_hs256_secret_file": tmp_path}, 'the algorithms must be ["HS256"]'),
        ({**jwt_mode}, "RS256, ES256 need auth_jwks_file or auth_jwks_url"),
        ({**jwt_mode, "auth_jwks_url": "file:///etc/passwd"}, "must start with https:// or http://"),
        ({"auth_public_services": ["sentinel.v1.ScoringService"]}, "only health and reflection"),
        ({"auth_certificate_roles": {"gw": ["root"]}}, "'gw': unknown role root"),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError) as raised:
            load_settings(**settings)
        assert message in str(raised.value), (settings, str(raised.value))
    assert not load_settings().authentication_enabled
    assert load_settings(**jwt_mode, auth_jwks_file=tmp_path).authentication_enabled
