"""The role table: which roles may call each method of the gRPC port. Default deny.

Every method of sentinel.v1's services is listed with the roles allowed to call it; a method that is
not listed is refused to everyone (PERMISSION_DENIED), so a method added to the contract stays closed
until it is given roles here (tests/test_authentication.py fails until it is). Health and reflection
are not sentinel.v1: an authenticated caller holding any of the roles may use them, and the services
named in ``auth_public_services`` (health by default, for load balancers) need no credentials at all.

The roles (``Settings.AUTH_ROLES``, which the settings check ``auth_certificate_roles`` against):

- ``scorer``: the payment services, scoring transactions;
- ``ledger-reader``: balances, histories and stored decisions;
- ``rules-viewer``: reading rules, their history, and testing a rule against a transaction;
- ``rules-admin``: everything ``rules-viewer`` may, and changing rules;
- ``ops-viewer``: the ops dashboard on the metrics port (its figures and the decision lookup,
  ``sentinel.server.dashboard``); no gRPC method beyond health and reflection;
- ``events-admin``: decision-event subscriptions (create, list, disable, rotate secrets) and replays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sentinel.config import Settings

SCORER: Final = "scorer"
LEDGER_READER: Final = "ledger-reader"
RULES_VIEWER: Final = "rules-viewer"
RULES_ADMIN: Final = "rules-admin"
OPS_VIEWER: Final = "ops-viewer"
EVENTS_ADMIN: Final = "events-admin"
ROLES: Final = frozenset(Settings.AUTH_ROLES)
ANY_ROLE: Final = ROLES  # authenticated with at least one role, whichever (health, reflection)

_READ_RULES = frozenset({RULES_VIEWER, RULES_ADMIN})
_CHANGE_RULES = frozenset({RULES_ADMIN})

METHOD_ROLES: Final[Mapping[str, frozenset[str]]] = {
    "/sentinel.v1.ScoringService/Score": frozenset({SCORER}),
    "/sentinel.v1.ScoringService/ScoreBatch": frozenset({SCORER}),
    "/sentinel.v1.ScoringService/ScoreStream": frozenset({SCORER}),
    "/sentinel.v1.LedgerService/GetBalance": frozenset({LEDGER_READER}),
    "/sentinel.v1.LedgerService/ListHistory": frozenset({LEDGER_READER}),
    "/sentinel.v1.LedgerService/GetDecision": frozenset({LEDGER_READER}),
    "/sentinel.v1.RulesService/ListRules": _READ_RULES,
    "/sentinel.v1.RulesService/GetRule": _READ_RULES,
    "/sentinel.v1.RulesService/TestRule": _READ_RULES,
    "/sentinel.v1.RulesService/ListRuleVersions": _READ_RULES,
    "/sentinel.v1.RulesService/PutRule": _CHANGE_RULES,
    "/sentinel.v1.RulesService/DeleteRule": _CHANGE_RULES,
    "/sentinel.v1.RulesService/RollbackRule": _CHANGE_RULES,
    "/sentinel.v1.EventsService/CreateSubscription": frozenset({EVENTS_ADMIN}),
    "/sentinel.v1.EventsService/ListSubscriptions": frozenset({EVENTS_ADMIN}),
    "/sentinel.v1.EventsService/DisableSubscription": frozenset({EVENTS_ADMIN}),
    "/sentinel.v1.EventsService/RotateSubscriptionSecret": frozenset({EVENTS_ADMIN}),
    "/sentinel.v1.EventsService/ReplayEvents": frozenset({EVENTS_ADMIN}),
    "/grpc.health.v1.Health/Check": ANY_ROLE,
    "/grpc.health.v1.Health/Watch": ANY_ROLE,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": ANY_ROLE,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": ANY_ROLE,
}


def service_of(method: str) -> str:
    """``/pkg.Service/Method`` -> ``pkg.Service``."""
    return method.lstrip("/").rsplit("/", 1)[0]


def public_methods(public_services: Iterable[str]) -> frozenset[str]:
    """The table's methods of the services callable without credentials."""
    services = set(public_services)
    return frozenset(method for method in METHOD_ROLES if service_of(method) in services)


def allowed(method: str, roles: frozenset[str]) -> bool:
    """Whether a caller with ``roles`` may call ``method`` (never for a method not in the table)."""
    permitted = METHOD_ROLES.get(method)
    return permitted is not None and not permitted.isdisjoint(roles)
