"""Authentication and authorization of every call: the ``AuthInterceptor``.

With ``auth_mode = jwt`` each call must present credentials, in this order:

1. a bearer JWT in the ``authorization`` metadata (``Bearer <token>``), checked by ``TokenValidator``;
2. without one, under mTLS, the client certificate: its identity (a subject alternative name, else the
   common name, as gRPC verified them) stands for the caller when ``auth_certificate_roles`` maps it.

A call without valid credentials ends UNAUTHENTICATED with a short reason; a caller whose roles do not
allow the method (``sentinel.server.roles``; a method not in the table is allowed to nobody) ends
PERMISSION_DENIED. Methods of ``auth_public_services`` pass without credentials, as anonymous. Every
refusal is logged (``call_refused``: method, code, reason, peer), never with the token.

An accepted call runs with its ``Caller`` in ``sentinel.server.identity.CALLER`` (and ``caller`` bound in
the call's log context): the scoring handler records it in each decision, the rules service as the
author of a change. With ``auth_mode = none`` there is no interceptor and every caller is ANONYMOUS.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

import grpc
import structlog

from sentinel.config import Settings
from sentinel.server.identity import CALLER, Caller
from sentinel.server.roles import METHOD_ROLES, allowed, public_methods
from sentinel.server.signing_keys import signing_keys
from sentinel.server.tokens import TokenRefused, TokenValidator

log = structlog.get_logger("sentinel.auth")

BEARER = "bearer "


class Refused(Exception):
    """A call that may not proceed: the status and a reason safe to send and to log."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def bearer_token(metadata: Any) -> str | None:
    """The token of the call's ``authorization: Bearer <token>`` (None without the header); Refused
    when the header is there but is no bearer token, or is there twice."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "more than one authorization header")
    value = values[0]
    if not isinstance(value, str) or value[: len(BEARER)].lower() != BEARER or not value[len(BEARER) :]:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "authorization must be 'Bearer <token>'")
    return value[len(BEARER) :].strip()


def certificate_identities(auth_context: Mapping[str, list[bytes]]) -> list[str]:
    """The verified client certificate's names, subject alternative names first (none without mTLS)."""
    if auth_context.get("transport_security_type") != [b"ssl"]:
        return []
    names = [
        *auth_context.get("x509_subject_alternative_name", []),
        *auth_context.get("x509_common_name", []),
    ]
    return [name.decode("utf-8", "replace") for name in names]


class Authenticator:
    """Who the caller of a call is, from its token or its client certificate."""

    def __init__(self, tokens: TokenValidator, certificate_roles: Mapping[str, list[str]]) -> None:
        self._tokens = tokens
        self._certificate_roles = {name: frozenset(roles) for name, roles in certificate_roles.items()}

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """The call's caller; Refused (UNAUTHENTICATED) without acceptable credentials."""
        token = bearer_token(context.invocation_metadata())
        if token is not None:
            try:
                return await self._tokens.caller(token)
            except TokenRefused as exc:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        if self._certificate_roles:
            for name in certificate_identities(context.auth_context()):
                roles = self._certificate_roles.get(name)
                if roles is not None:
                    return Caller(subject=name, roles=roles, source="certificate")
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")


Behavior = Callable[..., Any]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Admits each call of a non-public method only for a caller whose roles allow it (default deny).

    Place it after MetricsInterceptor, so refused calls are counted with their status. The guarded
    handler of a method is built once and reused, like MetricsInterceptor's; it keeps the wrapped
    handler's (de)serializers (the scoring handlers take and return raw bytes).
    """

    def __init__(self, authenticator: Authenticator, public: frozenset[str]) -> None:
        self._authenticator = authenticator
        self._public = public
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = await continuation(handler_call_details)
        if handler is None or method in self._public:
            return handler
        guarded = self._guard(handler, method)
        self._guarded[method] = guarded
        return guarded

    async def _admit(self, method: str, context: grpc.aio.ServicerContext) -> None:
        """Authenticate and authorize the call, then make its caller current; abort when refused."""
        try:
            caller = await self._authenticator.caller(context)
            if not allowed(method, caller.roles):
                raise Refused(grpc.StatusCode.PERMISSION_DENIED, _denial(method))
        except Refused as refusal:
            await _refuse(method, context, refusal)
        CALLER.set(caller)
        structlog.contextvars.bind_contextvars(caller=caller.subject)

    def _guard(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` with ``_admit`` before its behaviour, for each of the four kinds of method."""
        admit = self._admit
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_before(admit, method, handler.unary_unary), **options)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _before(admit, method, handler.stream_unary), **options
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _before_stream(admit, method, handler.unary_stream), **options
            )
        return grpc.stream_stream_rpc_method_handler(
            _before_stream(admit, method, handler.stream_stream), **options
        )


Admit = Callable[[str, grpc.aio.ServicerContext], Awaitable[None]]


def _before(admit: Admit, method: str, behavior: Behavior) -> Behavior:
    """A unary-response behaviour that admits the call first."""

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await admit(method, context)
        return await behavior(request, context)

    return guarded


def _before_stream(admit: Admit, method: str, behavior: Behavior) -> Behavior:
    """A streaming-response behaviour that admits the call first; an async generator like the wrapped one,
    or a coroutine when the wrapped one writes with ``context.write`` (health Watch)."""
    if not inspect.isasyncgenfunction(behavior):
        return _before(admit, method, behavior)

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await admit(method, context)
        async for response in behavior(request, context):
            yield response

    return guarded


def _denial(method: str) -> str:
    roles = METHOD_ROLES.get(method)
    if roles is None:
        return f"{method} is open to no role"
    return f"{method} needs the role {' or '.join(sorted(roles))}"


async def _refuse(method: str, context: grpc.aio.ServicerContext, refusal: Refused) -> NoReturn:
    log.warning(
        "call_refused", method=method, code=refusal.code.name, reason=refusal.reason, peer=context.peer()
    )
    await context.abort(refusal.code, refusal.reason)
    raise AssertionError("abort returned")  # pragma: no cover - grpc always raises


def check_signing_keys(settings: Settings) -> None:
    """Read the configured signing keys once, before any worker starts, so that a missing or bad JWKS or
    secret stops ``sentinel serve`` with one line (ConfigError, exit status 2) rather than failing the
    workers; the workers read them again themselves."""
    if settings.authentication_enabled:
        signing_keys(settings)


def auth_interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor the settings ask for: none with ``auth_mode = none``. Reads the signing keys
    (ConfigError when they cannot be read)."""
    if not settings.authentication_enabled:
        return []
    tokens = TokenValidator.from_settings(settings, signing_keys(settings))
    authenticator = Authenticator(tokens, settings.auth_certificate_roles)
    return [AuthInterceptor(authenticator, public_methods(settings.auth_public_services))]
