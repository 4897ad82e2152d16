"""ScoringService on the wire: the handlers take the request bytes and return the response bytes.

The generated ``add_ScoringServiceServicer_to_server`` parses every request into protobuf messages and
serializes every response; the scoring path does both itself, in compiled code, a whole call at a
time (``sentinel.hotpath.WireDecoder`` and ``sentinel.hotpath.respond``). Registered here with no
(de)serializers, grpc hands the servicer the bytes as they arrived, and bytes that are no valid message
are the servicer's to refuse with INVALID_ARGUMENT, never a deserializer's exception (grpc answers
UNKNOWN for those).
"""

from __future__ import annotations

import grpc

from sentinel.server.scoring import ScoringServicer
from sentinel.v1 import scoring_pb2


def add_scoring_service(servicer: ScoringServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer``'s methods under sentinel.v1.ScoringService, on raw bytes."""
    handlers = {
        "Score": grpc.unary_unary_rpc_method_handler(servicer.Score),
        "ScoreBatch": grpc.unary_unary_rpc_method_handler(servicer.ScoreBatch),
        "ScoreStream": grpc.stream_stream_rpc_method_handler(servicer.ScoreStream),
    }
    service = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
