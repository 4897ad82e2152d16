"""RulesService: the gRPC face of rule management (sentinel.v1.RulesService).

Status codes: INVALID_ARGUMENT (with a ``google.rpc.BadRequest`` naming the field, e.g.
``rule.expression: unknown name 'ammount' at column 1 — did you mean 'amount'?``) for bad content,
NOT_FOUND for an unknown rule or version, ABORTED when ``expected_version`` is stale, UNAVAILABLE
when Postgres cannot be reached (retry; with ``expected_version`` set, a retry of a change that did
commit gets ABORTED instead of a second version). Changes reach
every worker through the store's NOTIFY within a second (``reload``).

Authorization: with authentication on (``auth_mode = jwt``), changing rules (PutRule, DeleteRule,
RollbackRule) needs the ``rules-admin`` role and reading them ``rules-viewer`` or ``rules-admin``
(``sentinel.server.roles``). The author recorded in the rules history is then the authenticated caller's
subject: a request may leave ``author`` empty or repeat that subject; naming anyone else is refused
(PERMISSION_DENIED), never silently rewritten, so a tool that thinks it records another name learns
that it does not. Without authentication ``author`` is taken from the request (required).

Register it in a worker::

    rules_pb2_grpc.add_RulesServiceServicer_to_server(
        RulesServicer(store, max_clock_skew_s=settings.max_clock_skew_s, state_provider=read_state), server
    )
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import asyncpg
import grpc
import numpy as np
import numpy.typing as npt
import structlog

from sentinel.hotpath import (
    FEATURE_NAMES,
    RuleSet,
    StateDecodeError,
    TransactionColumns,
    TransactionColumnsBuilder,
    build_features,
    build_features_stateless,
    evaluate_rules,
)
from sentinel.server.errors import FieldViolation, InvalidTransaction, abort_invalid
from sentinel.server.identity import current_caller
from sentinel.server.rules.compiler import compile_expression
from sentinel.server.rules.definitions import InvalidRule, RuleSpec
from sentinel.server.rules.language import RuleExpressionError
from sentinel.server.rules.storage import RuleNotFound, RuleStore, StaleVersion
from sentinel.server.validate import ValidatedTransaction, validate_transaction
from sentinel.server.wire_columns import append_transaction
from sentinel.v1 import rules_pb2, rules_pb2_grpc

log = structlog.get_logger(__name__)

StateProvider = Callable[[str], Awaitable[bytes | None]]
"""Reads the encoded per-account state of an account id (None: no state yet); never writes it."""

_T = TypeVar("_T")


async def _invalid(context: grpc.aio.ServicerContext, field: str, description: str) -> NoReturn:
    await abort_invalid(context, InvalidTransaction([FieldViolation(field, description)]))


async def _author(context: grpc.aio.ServicerContext, requested: str) -> str:
    """Who the rules history records for a change: the authenticated caller (a different ``requested``
    author is refused) or, without authentication, the request's author."""
    caller = current_caller()
    if caller.source == "none":
        return requested
    if requested and requested != caller.subject:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"author must be empty or the authenticated caller {caller.subject!r}, not {requested!r}",
        )
    return caller.subject


class RulesServicer(rules_pb2_grpc.RulesServiceServicer):
    """Implements sentinel.v1.RulesService over a RuleStore.

    ``state_provider`` lets TestRule compute the stateful features (velocity, travel, novelty) from
    the account's current state, read-only; without it, or when it fails, TestRule uses the
    stateless features (``state_known`` = 0), as the server does in degraded mode.
    """

    def __init__(
        self,
        store: RuleStore,
        *,
        max_clock_skew_s: float = 86_400.0,
        state_provider: StateProvider | None = None,
    ) -> None:
        self._store = store
        self._max_skew_s = max_clock_skew_s
        self._state_provider = state_provider

    async def _call(self, context: grpc.aio.ServicerContext, field_prefix: str, call: Awaitable[_T]) -> _T:
        """Await a store call, mapping its errors to statuses."""
        try:
            return await call
        except RuleExpressionError as exc:
            await _invalid(context, f"{field_prefix}expression", str(exc))
        except InvalidRule as exc:
            field = exc.field if exc.field.startswith("rule.") else f"{field_prefix}{exc.field}"
            await _invalid(context, field, exc.description)
        except RuleNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except StaleVersion as exc:
            await context.abort(grpc.StatusCode.ABORTED, str(exc))
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            log.warning("rule_database_unavailable", error=str(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the rule database is unavailable; retry")
        raise AssertionError("abort returned")  # pragma: no cover - grpc always raises

    async def ListRules(
        self, request: rules_pb2.ListRulesRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.ListRulesResponse:
        rules = await self._call(context, "", self._store.current(include_deleted=request.include_deleted))
        return rules_pb2.ListRulesResponse(rules=[rule.to_proto() for rule in rules])

    async def GetRule(
        self, request: rules_pb2.GetRuleRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.GetRuleResponse:
        rule = await self._call(context, "", self._store.get(request.rule_id, request.version))
        return rules_pb2.GetRuleResponse(rule=rule.to_proto())

    async def PutRule(
        self, request: rules_pb2.PutRuleRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.PutRuleResponse:
        try:
            spec = RuleSpec.from_proto(request.rule)
        except InvalidRule as exc:
            await _invalid(context, exc.field, exc.description)
        author = await _author(context, request.author)
        rule = await self._call(
            context,
            "rule.",
            self._store.put(spec, author, request.comment, request.expected_version),
        )
        return rules_pb2.PutRuleResponse(rule=rule.to_proto())

    async def DeleteRule(
        self, request: rules_pb2.DeleteRuleRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.DeleteRuleResponse:
        author = await _author(context, request.author)
        rule = await self._call(context, "", self._store.delete(request.rule_id, author, request.comment))
        return rules_pb2.DeleteRuleResponse(rule=rule.to_proto())

    async def ListRuleVersions(
        self, request: rules_pb2.ListRuleVersionsRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.ListRuleVersionsResponse:
        versions = await self._call(context, "", self._store.versions(request.rule_id))
        return rules_pb2.ListRuleVersionsResponse(versions=[rule.to_proto() for rule in versions])

    async def RollbackRule(
        self, request: rules_pb2.RollbackRuleRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.RollbackRuleResponse:
        author = await _author(context, request.author)
        rule = await self._call(
            context, "", self._store.rollback(request.rule_id, request.to_version, author, request.comment)
        )
        return rules_pb2.RollbackRuleResponse(rule=rule.to_proto())

    async def TestRule(
        self, request: rules_pb2.TestRuleRequest, context: grpc.aio.ServicerContext
    ) -> rules_pb2.TestRuleResponse:
        subject = request.WhichOneof("subject")
        if subject == "rule_id":
            rule = await self._call(context, "", self._store.get(request.rule_id))
            if rule.deleted:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"rule {request.rule_id!r} is deleted")
            expression, prefix = rule.spec.expression, ""
        elif subject == "draft":
            expression, prefix = request.draft.expression, "draft."
        else:
            await _invalid(context, "subject", "set rule_id or draft")
        try:
            program = compile_expression(expression)
        except RuleExpressionError as exc:
            await _invalid(context, f"{prefix}expression", str(exc))
        if not request.HasField("transaction"):
            await _invalid(context, "transaction", "is required")
        try:
            txn = validate_transaction(request.transaction, time.time(), self._max_skew_s)
        except InvalidTransaction as exc:
            await abort_invalid(context, exc)
        columns, features = await self._features(txn)
        matched = bool(evaluate_rules(RuleSet([program]), features, columns)[0, 0])
        return rules_pb2.TestRuleResponse(
            matched=matched,
            features=[
                rules_pb2.FeatureValue(name=name, value=float(value))
                for name, value in zip(FEATURE_NAMES, features[0], strict=True)
            ],
        )

    async def _features(
        self, txn: ValidatedTransaction
    ) -> tuple[TransactionColumns, npt.NDArray[np.float32]]:
        """Columns and features of one transaction; account state is read, never written."""
        builder = TransactionColumnsBuilder(1)
        append_transaction(builder, 0, txn)
        columns = builder.build()
        if self._state_provider is None:
            return columns, build_features_stateless(columns)
        try:
            state = await self._state_provider(txn.account_id)
        except Exception as exc:  # the state store is down: answer like degraded scoring does
            log.warning("test_rule_state_unavailable", error=f"{type(exc).__name__}: {exc}")
            return columns, build_features_stateless(columns)
        try:
            features, _ = build_features(columns, [state])
        except StateDecodeError as exc:
            log.error("account_state_corrupt", error=str(exc), account_id=txn.account_id)
            features, _ = build_features(columns, [None])
        return columns, features
