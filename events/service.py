"""``EventsService`` (sentinel.v1): webhook subscriptions and replays over gRPC, for role events-admin.

A thin layer over ``SubscriptionStore``; the actor kept in the subscription history is the
authenticated caller (``anonymous`` without authentication). The store's pool acts as the events role
and is opened on the first call, not at start-up: a server whose database login was not granted
``sentinel_events`` still serves everything else, and these calls answer FAILED_PRECONDITION saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from datetime import UTC
from typing import NoReturn, TypeVar

import asyncpg
import grpc
import structlog

from sentinel.config import Settings
from sentinel.events.body import sequence_of
from sentinel.events.store import Destination, InvalidSubscription, SubscriptionNotFound, SubscriptionStore
from sentinel.ledger.lane import is_unavailable
from sentinel.postgres import EVENTS_ROLE
from sentinel.server.errors import FieldViolation, InvalidTransaction, abort_invalid
from sentinel.server.identity import current_caller
from sentinel.v1 import decision_pb2, events_pb2, events_pb2_grpc

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
_OUTCOMES = (decision_pb2.OUTCOME_APPROVE, decision_pb2.OUTCOME_REVIEW, decision_pb2.OUTCOME_DECLINE)
_KINDS = {"webhook": events_pb2.DESTINATION_KIND_WEBHOOK, "amqp": events_pb2.DESTINATION_KIND_AMQP}


def subscription_message(destination: Destination) -> events_pb2.Subscription:
    """A stored destination as the contract's Subscription (no secret)."""
    message = events_pb2.Subscription(
        subscription_id=destination.destination_id,
        kind=_KINDS[destination.kind],
        url=destination.url,
        outcomes=[f"OUTCOME_{outcome}" for outcome in destination.outcomes],
        event_types=destination.event_types,
        active=destination.active,
        description=destination.description,
    )
    message.created_at.FromDatetime(destination.created_at)
    message.updated_at.FromDatetime(destination.updated_at)
    if destination.previous_secret_until is not None:
        message.previous_secret_expires_at.FromDatetime(destination.previous_secret_until)
    return message


def outcome_names(outcomes: Iterable[int]) -> list[str]:
    """Outcome enum values as the store's names; ValueError for OUTCOME_UNSPECIFIED or an unknown number."""
    names = []
    for value in outcomes:
        if value not in _OUTCOMES:
            raise ValueError(f"outcome {value} is not APPROVE, REVIEW or DECLINE")
        names.append(decision_pb2.Outcome.Name(value).removeprefix("OUTCOME_"))
    return names


async def _invalid(context: grpc.aio.ServicerContext, field: str, description: str) -> NoReturn:
    await abort_invalid(context, InvalidTransaction([FieldViolation(field, description)]))


class EventsServicer(events_pb2_grpc.EventsServiceServicer):
    """The EventsService of one worker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: SubscriptionStore | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> SubscriptionStore:
        async with self._opening:
            if self._store is None:
                assert self._settings.database_url is not None
                self._store = await SubscriptionStore.connect(
                    self._settings.database_url,
                    connect_timeout_s=self._settings.ledger_connect_timeout_s,
                    application_name="sentinel-events-service",
                )
            return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()

    async def _call(self, context: grpc.aio.ServicerContext, field: str, call: Awaitable[_T]) -> _T:
        """Await a store call, mapping its errors to statuses."""
        try:
            return await call
        except InvalidSubscription as exc:
            await _invalid(context, field, str(exc))
        except SubscriptionNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except asyncpg.InsufficientPrivilegeError:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the server's database login may not act as role {EVENTS_ROLE}: GRANT {EVENTS_ROLE} TO it",
            )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("events_database_unavailable", error=str(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the events database is unavailable; retry")
        raise AssertionError("abort returned")  # pragma: no cover - grpc always raises

    async def CreateSubscription(
        self, request: events_pb2.CreateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.CreateSubscriptionResponse:
        try:
            outcomes = outcome_names(request.outcomes)
        except ValueError as exc:
            await _invalid(context, "outcomes", str(exc))
        store = await self._call(context, "url", self._opened())
        destination, secret = await self._call(
            context,
            "url",
            store.create_webhook(
                request.url,
                outcomes=outcomes,
                event_types=list(request.event_types),
                description=request.description,
                actor=current_caller().subject,
                allow_plain_http_loopback=self._settings.events_allow_plain_http_loopback,
            ),
        )
        return events_pb2.CreateSubscriptionResponse(
            subscription=subscription_message(destination), secret=secret
        )

    async def ListSubscriptions(
        self, request: events_pb2.ListSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ListSubscriptionsResponse:
        store = await self._call(context, "", self._opened())
        destinations = await self._call(context, "", store.list(request.include_inactive))
        return events_pb2.ListSubscriptionsResponse(
            subscriptions=[subscription_message(d) for d in destinations]
        )

    async def DisableSubscription(
        self, request: events_pb2.DisableSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.DisableSubscriptionResponse:
        store = await self._call(context, "", self._opened())
        destination = await self._call(
            context, "subscription_id", store.disable(request.subscription_id, actor=current_caller().subject)
        )
        return events_pb2.DisableSubscriptionResponse(subscription=subscription_message(destination))

    async def RotateSubscriptionSecret(
        self, request: events_pb2.RotateSubscriptionSecretRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.RotateSubscriptionSecretResponse:
        store = await self._call(context, "", self._opened())
        destination, secret = await self._call(
            context,
            "subscription_id",
            store.rotate_secret(
                request.subscription_id,
                actor=current_caller().subject,
                grace_s=self._settings.events_secret_grace_s,
            ),
        )
        return events_pb2.RotateSubscriptionSecretResponse(
            subscription=subscription_message(destination), secret=secret
        )

    async def ReplayEvents(
        self, request: events_pb2.ReplayEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ReplayEventsResponse:
        try:
            sequences = [sequence_of(identifier) for identifier in request.event_ids] or None
        except ValueError as exc:
            await _invalid(context, "event_ids", str(exc))
        store = await self._call(context, "", self._opened())
        count = await self._call(
            context,
            "since",
            store.replay(
                sequences=sequences,
                since=request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
                until=request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None,
                destination_id=request.subscription_id or None,
            ),
        )
        return events_pb2.ReplayEventsResponse(deliveries_scheduled=count)
