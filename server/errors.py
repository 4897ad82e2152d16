"""The errors the server reports to clients: bad fields, and their gRPC statuses with rich details.

``InvalidTransaction`` (raised by validation and by every service that checks a request field) names
each bad field; clients get the field path both in the status message (for humans and plain clients)
and as a structured google.rpc.BadRequest FieldViolation (for clients that read
``grpc-status-details-bin``). A ``Refusal`` (a caller's rate limit, a worker's in-flight bound) is
RESOURCE_EXHAUSTED with google.rpc.RetryInfo and gRPC's retry pushback, so clients know when to retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sentinel.v1 import errors_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path and what is wrong with it."""

    field: str
    description: str


class InvalidTransaction(ValueError):
    """A request breaks the contract; ``violations`` names every bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


def invalid_argument_status(error: InvalidTransaction) -> grpc.Status:
    """INVALID_ARGUMENT whose message and BadRequest details name every bad field."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(error), details=[detail])
    )


# gRPC's retry pushback (gRFC A6): how long a client's retry policy waits before retrying; negative: never.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call refused for lack of capacity (RESOURCE_EXHAUSTED): a caller's rate limit or a worker's
    in-flight bound. ``retry_after_s`` None: retrying the same call never helps (it is larger than the
    limit allows at once); ``limit``: the name of the rate limit, for google.rpc.QuotaFailure."""

    message: str
    retry_after_s: float | None
    limit: str | None = None


def exhausted_metadata(refusal: Refusal) -> tuple[tuple[str, str | bytes], ...]:
    """The trailing metadata of a refusal: google.rpc.Status details (RetryInfo, and QuotaFailure naming
    the rate limit) and the ``grpc-retry-pushback-ms`` that gRPC retry policies obey."""
    details = []
    if refusal.retry_after_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(refusal.retry_after_s * 1e9))
        details.append(retry)
    if refusal.limit is not None:
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=refusal.limit, description=refusal.message
        )
        details.append(error_details_pb2.QuotaFailure(violations=[violation]))
    packed = []
    for detail in details:
        packed.append(any_pb2.Any())
        packed[-1].Pack(detail)
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=refusal.message, details=packed)
    )
    pushback = "-1" if refusal.retry_after_s is None else str(max(1, round(refusal.retry_after_s * 1000)))
    return (*status.trailing_metadata, (RETRY_PUSHBACK_KEY, pushback))


async def abort_exhausted(context: grpc.aio.ServicerContext, refusal: Refusal) -> NoReturn:
    """End the call with RESOURCE_EXHAUSTED for ``refusal``, with its retry information."""
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message, exhausted_metadata(refusal))
    raise AssertionError("abort returned")  # pragma: no cover - grpc always raises


async def abort_invalid(context: grpc.aio.ServicerContext, error: InvalidTransaction) -> NoReturn:
    """End the call with INVALID_ARGUMENT for ``error``."""
    await context.abort_with_status(invalid_argument_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - grpc always raises


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` and ``message``."""
    await context.abort(code, message)
    raise AssertionError("abort returned")  # pragma: no cover - grpc always raises


def item_error(
    code: grpc.StatusCode, message: str, violations: Sequence[FieldViolation] = ()
) -> errors_pb2.ItemError:
    """The per-item error of ScoreBatch / ScoreStream results."""
    return errors_pb2.ItemError(
        code=code.value[0],
        message=message,
        field_violations=[
            errors_pb2.FieldViolation(field=v.field, description=v.description) for v in violations
        ],
    )
