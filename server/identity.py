"""Who is calling: the identity the authentication interceptor established for the current call.

The interceptor authenticates a call once (a bearer JWT, or a client certificate under mTLS) and sets
``CALLER`` for the task that runs the handler; the handler and the stages it calls read it with
``current_caller()``: the rate limiter charges that identity, the ledger records it with each decision
and the rules history with each change. A context variable rather than an argument because grpc.aio
runs each call's handler in its own task, and the interceptor wraps the handler in that same task.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Literal

CallerSource = Literal["jwt", "certificate", "none"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated (or, with authentication off, anonymous) caller."""

    subject: str  # JWT ``sub`` or the client certificate's identity; "anonymous" without authentication
    roles: frozenset[str]
    source: CallerSource


ANONYMOUS = Caller(subject="anonymous", roles=frozenset(), source="none")
CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("sentinel_caller", default=ANONYMOUS)


def current_caller() -> Caller:
    """The caller of the call being handled (ANONYMOUS when authentication is off)."""
    return CALLER.get()
