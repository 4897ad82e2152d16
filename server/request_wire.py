"""ScoringService's requests off the wire: undecodable bytes become a value, not an exception.

grpc answers UNKNOWN when a request deserializer raises; a malformed body (garbage, a broken wire
format, invalid UTF-8) is the caller's error and must get INVALID_ARGUMENT like any other bad input.
The servicer is registered here with deserializers that never raise: it receives an Undecodable in
the request's place and answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from sentinel.v1 import scoring_pb2, scoring_pb2_grpc

_Request = TypeVar("_Request", bound=Message)


class Undecodable(NamedTuple):
    """Stands in for request bytes that are no message of the method's type; ``error`` says why."""

    error: str


def _parse_or_mark(message_type: type[_Request]) -> Callable[[bytes], _Request | Undecodable]:
    """A request deserializer that never raises (grpc answers UNKNOWN when one does): bytes that are no
    ``message_type`` become an Undecodable, which the servicer answers with INVALID_ARGUMENT."""
    parse = message_type.FromString

    def deserialize(data: bytes) -> _Request | Undecodable:
        try:
            return parse(data)
        except DecodeError as exc:
            return Undecodable(f"the request could not be parsed: {exc}")

    return deserialize


def add_scoring_service(servicer: scoring_pb2_grpc.ScoringServiceServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` as the generated ``add_ScoringServiceServicer_to_server`` does, with
    deserializers that never raise."""
    handlers = {
        "Score": grpc.unary_unary_rpc_method_handler(
            servicer.Score,
            request_deserializer=_parse_or_mark(scoring_pb2.ScoreRequest),
            response_serializer=scoring_pb2.ScoreResponse.SerializeToString,
        ),
        "ScoreBatch": grpc.unary_unary_rpc_method_handler(
            servicer.ScoreBatch,
            request_deserializer=_parse_or_mark(scoring_pb2.ScoreBatchRequest),
            response_serializer=scoring_pb2.ScoreBatchResponse.SerializeToString,
        ),
        "ScoreStream": grpc.stream_stream_rpc_method_handler(
            servicer.ScoreStream,
            request_deserializer=_parse_or_mark(scoring_pb2.ScoreStreamRequest),
            response_serializer=scoring_pb2.ScoreStreamResponse.SerializeToString,
        ),
    }
    service = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
