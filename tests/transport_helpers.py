"""Helpers of the transport-security tests (Python and Node clients): TLS channel credentials from a
development PKI, a health check over a fresh connection, and a gRPC server that records the
authorization header each Score call brings."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sentinel.certificates import DevPki
from sentinel.v1 import decision_pb2, scoring_pb2


def tls_credentials(pki: DevPki, *, client_certificate: bool = False) -> grpc.ChannelCredentials:
    """Trust ``pki``'s CA; with ``client_certificate``, present its client certificate too."""
    if not client_certificate:
        return grpc.ssl_channel_credentials(pki.ca_cert.read_bytes())
    return grpc.ssl_channel_credentials(
        pki.ca_cert.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )


def health_check(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """The status of a health check over a new connection (its own subchannel, so its own TLS
    handshake); plaintext without ``credentials``."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channel = (
        grpc.insecure_channel(address, options=options)
        if credentials is None
        else grpc.secure_channel(address, credentials, options=options)
    )
    with channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@contextmanager
def authorization_recorder(header: str = "authorization") -> Iterator[tuple[str, list[str]]]:
    """A plaintext gRPC server on loopback answering ScoringService/Score with an empty decision; yields
    its address and the ``header`` metadata of each call (in order; "" when there was none)."""
    seen: list[str] = []

    def score(request: scoring_pb2.ScoreRequest, context: grpc.ServicerContext) -> scoring_pb2.ScoreResponse:
        seen.append(dict(context.invocation_metadata()).get(header, ""))
        decision = decision_pb2.Decision(transaction_id=request.transaction.transaction_id)
        return scoring_pb2.ScoreResponse(decision=decision)

    method = grpc.unary_unary_rpc_method_handler(
        score,
        request_deserializer=scoring_pb2.ScoreRequest.FromString,
        response_serializer=scoring_pb2.ScoreResponse.SerializeToString,
    )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=2),
        handlers=[grpc.method_handlers_generic_handler("sentinel.v1.ScoringService", {"Score": method})],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        server.stop(None)
