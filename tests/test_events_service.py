"""The EventsService over gRPC (an in-process grpc.aio server on a real, migrated database): secrets shown
once, statuses for bad requests, replays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest

from sentinel.cli import main
from sentinel.config import load_settings
from sentinel.events.service import EventsServicer
from sentinel.ledger.migrate import migrate
from sentinel.v1 import decision_pb2, events_pb2, events_pb2_grpc


@pytest.fixture
async def stub(database_url: str) -> AsyncIterator[events_pb2_grpc.EventsServiceStub]:
    await migrate(database_url)
    servicer = EventsServicer(load_settings(database_url=database_url, events_secret_grace_s=60))
    server = grpc.aio.server()
    events_pb2_grpc.add_EventsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield events_pb2_grpc.EventsServiceStub(channel)
    await server.stop(None)
    await servicer.close()


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call  # type: ignore[misc]
    return failed.value.code()


async def test_subscriptions_over_grpc(stub: events_pb2_grpc.EventsServiceStub) -> None:
    created = await stub.CreateSubscription(
        events_pb2.CreateSubscriptionRequest(
            url="https://hooks.example.com/sentinel",
            outcomes=[decision_pb2.OUTCOME_DECLINE],
            description="desk",
        )
    )
    subscription = created.subscription
    assert created.secret.startswith("whsec_") and subscription.subscription_id.startswith("wh_")
    assert (subscription.kind, list(subscription.outcomes), subscription.active) == (
        events_pb2.DESTINATION_KIND_WEBHOOK,
        [decision_pb2.OUTCOME_DECLINE],
        True,
    )
    assert not subscription.HasField("previous_secret_expires_at")

    rotated = await stub.RotateSubscriptionSecret(
        events_pb2.RotateSubscriptionSecretRequest(subscription_id=subscription.subscription_id)
    )
    assert rotated.secret not in ("", created.secret)
    assert rotated.subscription.HasField("previous_secret_expires_at")

    listed = await stub.ListSubscriptions(events_pb2.ListSubscriptionsRequest())
    assert [s.subscription_id for s in listed.subscriptions] == [subscription.subscription_id]
    assert created.secret.encode() not in listed.SerializeToString()
    assert rotated.secret.encode() not in listed.SerializeToString()

    disabled = await stub.DisableSubscription(
        events_pb2.DisableSubscriptionRequest(subscription_id=subscription.subscription_id)
    )
    assert not disabled.subscription.active
    assert (await stub.ListSubscriptions(events_pb2.ListSubscriptionsRequest())).subscriptions == []
    everything = await stub.ListSubscriptions(events_pb2.ListSubscriptionsRequest(include_inactive=True))
    assert len(everything.subscriptions) == 1


async def test_bad_requests_get_their_status(stub: events_pb2_grpc.EventsServiceStub) -> None:
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    create = events_pb2.CreateSubscriptionRequest
    assert await _code(stub.CreateSubscription(create(url="http://hooks.example.com/"))) == invalid
    assert (
        await _code(stub.CreateSubscription(create(url="http://127.0.0.1:9/"))) == invalid
    )  # not allowed here
    unspecified = create(url="https://hooks.example.com/", outcomes=[decision_pb2.OUTCOME_UNSPECIFIED])
    assert await _code(stub.CreateSubscription(unspecified)) == invalid
    disable = events_pb2.DisableSubscriptionRequest(subscription_id="wh_unknown")
    assert await _code(stub.DisableSubscription(disable)) == not_found
    rotate = events_pb2.RotateSubscriptionSecretRequest(subscription_id="amqp")
    assert await _code(stub.RotateSubscriptionSecret(rotate)) == not_found
    replay = events_pb2.ReplayEventsRequest
    assert await _code(stub.ReplayEvents(replay(event_ids=["42"]))) == invalid
    assert await _code(stub.ReplayEvents(replay())) == invalid
    assert await _code(stub.ReplayEvents(replay(subscription_id="wh_unknown"))) == not_found
    replayed = await stub.ReplayEvents(replay(event_ids=["evt_42"]))
    assert replayed.deliveries_scheduled == 0  # no such entry, no subscription: nothing to do


def test_events_commands(
    database_url: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    asyncio.run(migrate(database_url))
    capsys.readouterr()  # the migration's log
    url = ["--url", database_url, "--json"]
    assert main(["events", "subscribe", "https://hooks.example.com/a", "--outcome", "decline", *url]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["secret"].startswith("whsec_") and created["outcomes"] == ["DECLINE"]
    assert main(["events", "list", *url]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["destination_id"] == created["destination_id"] and "secret" not in listed
    assert main(["events", "rotate-secret", created["destination_id"], *url]) == 0
    assert json.loads(capsys.readouterr().out)["secret"] not in ("", created["secret"])
    assert main(["events", "replay", "--event-id", "evt_1", *url]) == 0
    assert json.loads(capsys.readouterr().out) == {"deliveries_scheduled": 0}
    assert main(["events", "disable", created["destination_id"], *url]) == 0
    assert json.loads(capsys.readouterr().out)["active"] is False
    assert main(["events", "disable", "wh_nope", *url]) == 1
    assert "no subscription 'wh_nope'" in capsys.readouterr().err
