"""RulesService over a real grpc.aio server on a free port, backed by a real Postgres."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sentinel.hotpath import TransactionColumnsBuilder, build_features
from sentinel.ledger.migrate import migrate
from sentinel.localservices import LocalPostgres
from sentinel.server.rules.service import RulesServicer
from sentinel.server.rules.storage import RuleStore
from sentinel.v1 import decision_pb2, rules_pb2, rules_pb2_grpc, transaction_pb2

RULE = rules_pb2.Rule(
    rule_id="big-transfer",
    expression='amount > 5000 and type == "TRANSFER"',
    action=decision_pb2.RULE_ACTION_REVIEW,
    priority=300,
    severity=0.4,
    mode=rules_pb2.RULE_MODE_ACTIVE,
    description="large transfers",
)


def transaction(
    amount: str = "7000.00", latitude: float = 52.52, longitude: float = 13.40
) -> transaction_pb2.Transaction:
    txn = transaction_pb2.Transaction(
        transaction_id="t-1",
        account_id="acct-1",
        counterparty_id="acct-2",
        type=transaction_pb2.TRANSACTION_TYPE_TRANSFER,
        amount=transaction_pb2.Money(amount=amount, currency="EUR"),
        geo=transaction_pb2.GeoLocation(latitude=latitude, longitude=longitude, country="DE"),
    )
    txn.event_time.FromSeconds(int(time.time()) - 60)
    return txn


STATES: dict[str, bytes] = {}


async def read_state(account_id: str) -> bytes | None:
    return STATES.get(account_id)


@pytest.fixture
async def stub(database_url: str) -> AsyncIterator[rules_pb2_grpc.RulesServiceStub]:
    await migrate(database_url)
    STATES.clear()
    store = await RuleStore.connect(database_url)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rules_pb2_grpc.add_RulesServiceServicer_to_server(RulesServicer(store, state_provider=read_state), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield rules_pb2_grpc.RulesServiceStub(channel)
    await channel.close()
    await server.stop(None)
    await store.close()


async def status_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_put_get_list_versions_delete_rollback(stub: rules_pb2_grpc.RulesServiceStub) -> None:
    put = await stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="alice", comment="first"))
    assert (put.rule.version, put.rule.author, put.rule.comment) == (1, "alice", "first")
    assert put.rule.created_at.seconds > 0
    changed = rules_pb2.Rule()
    changed.CopyFrom(RULE)
    changed.mode = rules_pb2.RULE_MODE_SHADOW
    second = await stub.PutRule(rules_pb2.PutRuleRequest(rule=changed, author="bob", expected_version=1))
    assert second.rule.version == 2
    listed = await stub.ListRules(rules_pb2.ListRulesRequest())
    assert [(r.rule_id, r.version, r.mode) for r in listed.rules] == [
        ("big-transfer", 2, rules_pb2.RULE_MODE_SHADOW)
    ]
    old = await stub.GetRule(rules_pb2.GetRuleRequest(rule_id="big-transfer", version=1))
    assert old.rule.mode == rules_pb2.RULE_MODE_ACTIVE
    deleted = await stub.DeleteRule(rules_pb2.DeleteRuleRequest(rule_id="big-transfer", author="carol"))
    assert (deleted.rule.version, deleted.rule.deleted) == (3, True)
    assert list((await stub.ListRules(rules_pb2.ListRulesRequest())).rules) == []
    assert len((await stub.ListRules(rules_pb2.ListRulesRequest(include_deleted=True))).rules) == 1
    back = await stub.RollbackRule(
        rules_pb2.RollbackRuleRequest(rule_id="big-transfer", to_version=1, author="dave")
    )
    assert (back.rule.version, back.rule.mode, back.rule.deleted) == (4, rules_pb2.RULE_MODE_ACTIVE, False)
    versions = await stub.ListRuleVersions(rules_pb2.ListRuleVersionsRequest(rule_id="big-transfer"))
    assert [v.version for v in versions.versions] == [4, 3, 2, 1]


async def test_errors_map_to_status_codes(stub: rules_pb2_grpc.RulesServiceStub) -> None:
    bad = rules_pb2.Rule()
    bad.CopyFrom(RULE)
    bad.expression = "ammount > 5000"
    error = await status_of(stub.PutRule(rules_pb2.PutRuleRequest(rule=bad, author="alice")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown name 'ammount' at column 1 — did you mean 'amount'?" in error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    detail = error_details_pb2.BadRequest()
    status.details[0].Unpack(detail)
    assert detail.field_violations[0].field == "rule.expression"

    bad.expression = RULE.expression
    bad.severity = 2.0
    error = await status_of(stub.PutRule(rules_pb2.PutRuleRequest(rule=bad, author="alice")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "rule.severity" in error.details()
    error = await status_of(stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "author" in error.details()

    await stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="alice"))
    await stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="alice"))
    error = await status_of(
        stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="bob", expected_version=1))
    )
    assert error.code() == grpc.StatusCode.ABORTED and "at version 2, not 1" in error.details()

    for call in (
        stub.GetRule(rules_pb2.GetRuleRequest(rule_id="nope")),
        stub.GetRule(rules_pb2.GetRuleRequest(rule_id="big-transfer", version=9)),
        stub.DeleteRule(rules_pb2.DeleteRuleRequest(rule_id="nope", author="alice")),
        stub.ListRuleVersions(rules_pb2.ListRuleVersionsRequest(rule_id="nope")),
        stub.RollbackRule(rules_pb2.RollbackRuleRequest(rule_id="big-transfer", to_version=7, author="a")),
        stub.TestRule(rules_pb2.TestRuleRequest(rule_id="nope", transaction=transaction())),
    ):
        assert (await status_of(call)).code() == grpc.StatusCode.NOT_FOUND


async def test_test_rule_on_stored_and_draft_rules(stub: rules_pb2_grpc.RulesServiceStub) -> None:
    await stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="alice"))
    hit = await stub.TestRule(rules_pb2.TestRuleRequest(rule_id="big-transfer", transaction=transaction()))
    assert hit.matched
    features = {f.name: f.value for f in hit.features}
    assert features["type_transfer"] == 1.0 and features["first_transaction"] == 1.0
    miss = await stub.TestRule(
        rules_pb2.TestRuleRequest(rule_id="big-transfer", transaction=transaction("10.00"))
    )
    assert not miss.matched
    draft = rules_pb2.Rule(expression="ammount > 1")
    error = await status_of(stub.TestRule(rules_pb2.TestRuleRequest(draft=draft, transaction=transaction())))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "draft.expression" in error.details()
    invalid_txn = transaction()
    invalid_txn.amount.currency = "EUX"
    error = await status_of(
        stub.TestRule(rules_pb2.TestRuleRequest(rule_id="big-transfer", transaction=invalid_txn))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "currency" in error.details()
    # nothing was stored by testing
    assert [
        v.version
        for v in (
            await stub.ListRuleVersions(rules_pb2.ListRuleVersionsRequest(rule_id="big-transfer"))
        ).versions
    ] == [1]


async def test_test_rule_reads_account_state_from_the_provider(stub: rules_pb2_grpc.RulesServiceStub) -> None:
    # the account was last seen in Lisbon ten minutes ago
    builder = TransactionColumnsBuilder(1)
    builder.append(0, 50.0, 1, time.time() - 600, 38.72, -9.14, "PT")
    _, states = build_features(builder.build(), [None])
    STATES["acct-1"] = states[0]  # type: ignore[assignment]
    draft = rules_pb2.Rule(expression="travel_known and speed_kmh > 1000 and away_from_home")
    result = await stub.TestRule(rules_pb2.TestRuleRequest(draft=draft, transaction=transaction()))
    features = {f.name: f.value for f in result.features}
    assert result.matched
    assert features["state_known"] == 1.0 and features["distance_km"] > 2000


async def test_unreachable_database_is_unavailable(services_dir: Path) -> None:
    postgres = LocalPostgres(services_dir / "rules-outage").start()
    try:
        await migrate(postgres.url)
        store = await RuleStore.connect(postgres.url)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        rules_pb2_grpc.add_RulesServiceServicer_to_server(RulesServicer(store), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = rules_pb2_grpc.RulesServiceStub(channel)
                await stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="alice"))
                postgres.stop()
                for call in (
                    stub.ListRules(rules_pb2.ListRulesRequest()),
                    stub.PutRule(rules_pb2.PutRuleRequest(rule=RULE, author="alice")),
                ):
                    error = await status_of(call)
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        finally:
            await server.stop(None)
            await store.close()
    finally:
        postgres.stop()


async def test_test_rule_falls_back_to_stateless_features_when_state_is_unavailable(
    database_url: str,
) -> None:
    async def broken(_account_id: str) -> bytes | None:
        raise ConnectionError("redis is down")

    await migrate(database_url)
    store = await RuleStore.connect(database_url)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rules_pb2_grpc.add_RulesServiceServicer_to_server(RulesServicer(store, state_provider=broken), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            draft = rules_pb2.Rule(expression="amount > 100 and not state_known")
            result = await stub.TestRule(rules_pb2.TestRuleRequest(draft=draft, transaction=transaction()))
            assert result.matched
    finally:
        await server.stop(None)
        await store.close()
