"""A small typed Python client for SentinelStream.

It builds transactions from Python values (``Decimal`` amounts, aware ``datetime`` event times) and
retries ``Score`` calls answered UNAVAILABLE or CANCELLED through gRPC's own retry policy (at most 3
attempts, back-off 0.05 s doubling up to 0.5 s, within the call's deadline); ``ScoreBatch`` and
``ScoreStream`` are not retried. Retrying is safe because every transaction carries an idempotency key:
the server answers a retry with the original decision (``replayed``). CANCELLED is what a server that
begins shutting down (SIGTERM) answers the calls it has received but not yet handed to its handlers
(gRPC core cancels them), and a proxy in front of it (nginx) passes that answer on instead of resending
the call; the client itself never sees its own cancellations retried.

Transport: plaintext by default (a server on this machine); TLS with ``tls=True`` or any certificate
option (``root_certificates``: the CA that issued the server's certificate, else the system's roots;
``client_certificate`` and ``client_key`` for a server that requires client certificates). A ``token``,
or a ``token_provider`` called before every call (so it can hand out a refreshed token), is sent as
``authorization: Bearer <token>``; never over plaintext to another machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import grpc

from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2

_RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "sentinel.v1.ScoringService", "method": "Score"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
                },
            }
        ]
    }
)


def make_transaction(
    *,
    transaction_id: str,
    account_id: str,
    amount: Decimal | str,
    currency: str,
    event_time: datetime,
    type: str = "PAYMENT",
    counterparty_id: str = "",
    idempotency_key: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    country: str = "",
    device_id: str = "",
    ip_address: str = "",
    attributes: Mapping[str, str] | None = None,
) -> transaction_pb2.Transaction:
    """A sentinel.v1.Transaction from Python values; ``type`` is e.g. "TRANSFER" or "CASH_OUT"."""
    if event_time.tzinfo is None:
        raise ValueError("event_time must be timezone-aware")
    message = transaction_pb2.Transaction(
        transaction_id=transaction_id,
        idempotency_key=idempotency_key,
        account_id=account_id,
        counterparty_id=counterparty_id,
        type=f"TRANSACTION_TYPE_{type}",
        amount=transaction_pb2.Money(amount=str(amount), currency=currency),
        device_id=device_id,
        ip_address=ip_address,
        attributes=dict(attributes or {}),
    )
    message.event_time.FromDatetime(event_time)
    if latitude is not None or longitude is not None or country:
        geo = message.geo
        geo.country = country
        if latitude is not None:
            geo.latitude = latitude
        if longitude is not None:
            geo.longitude = longitude
    return message


def outcome_name(decision: decision_pb2.Decision) -> str:
    """The decision's outcome as a word: "APPROVE", "REVIEW" or "DECLINE" ("UNSPECIFIED" if unset)."""
    return decision_pb2.Outcome.Name(decision.outcome).removeprefix("OUTCOME_")


PemSource = bytes | str | os.PathLike[str]  # the PEM itself (bytes, or text from "-----BEGIN"), or its file


class SentinelClient:
    """Synchronous client of sentinel.v1.ScoringService; use as a context manager.

    ``channel``: a channel of the caller's own, instead of the one built from the transport options."""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 1.0,
        channel: grpc.Channel | None = None,
        tls: bool = False,
        root_certificates: PemSource | None = None,
        client_certificate: PemSource | None = None,
        client_key: PemSource | None = None,
        token: str | None = None,
        token_provider: Callable[[], str] | None = None,
    ) -> None:
        if (client_certificate is None) != (client_key is None):
            raise ValueError("client_certificate and client_key go together")
        if token is not None and token_provider is not None:
            raise ValueError("give token or token_provider, not both")
        tls = tls or root_certificates is not None or client_certificate is not None
        if channel is not None and tls:
            raise ValueError("the TLS options build the channel: leave them out when passing channel")
        if channel is None and not tls and (token or token_provider) and not _is_loopback(target):
            raise ValueError(f"a token would cross the network in plaintext to {target}: use TLS")
        if channel is None:
            credentials = None
            if tls:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=_pem(root_certificates),
                    private_key=_pem(client_key),
                    certificate_chain=_pem(client_certificate),
                )
            channel = _open_channel(target, credentials)
        self._channel = channel
        self._stub = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._token_provider = token_provider if token is None else (lambda: token)

    def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The call's metadata: the bearer token, asked for now (None without a token)."""
        if self._token_provider is None:
            return None
        return (("authorization", f"Bearer {self._token_provider()}"),)

    def score(self, transaction: transaction_pb2.Transaction) -> decision_pb2.Decision:
        """The decision for one transaction (raises grpc.RpcError with the server's status)."""
        request = scoring_pb2.ScoreRequest(transaction=transaction)
        return self._stub.Score(request, timeout=self._timeout_s, metadata=self._metadata()).decision

    def score_batch(
        self, transactions: Iterable[transaction_pb2.Transaction]
    ) -> list[scoring_pb2.ScoreBatchResult]:
        """One result (decision or item error) per transaction, in order."""
        request = scoring_pb2.ScoreBatchRequest(transactions=list(transactions))
        response = self._stub.ScoreBatch(request, timeout=self._timeout_s * 10, metadata=self._metadata())
        return list(response.results)

    def score_stream(
        self, transactions: Iterable[transaction_pb2.Transaction]
    ) -> Iterator[scoring_pb2.ScoreStreamResponse]:
        """Stream transactions and yield responses as they come (matched by transaction_id)."""
        requests = (scoring_pb2.ScoreStreamRequest(transaction=t) for t in transactions)
        yield from self._stub.ScoreStream(requests, metadata=self._metadata())

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> SentinelClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def channel_options() -> list[tuple[str, str | int]]:
    """The options of the client's channels: the retry policy of Score (for a channel of the caller's
    own, ``SentinelClient(channel=...)``, that should retry as the client does)."""
    return [("grpc.service_config", _RETRY_SERVICE_CONFIG), ("grpc.enable_retries", 1)]


def _open_channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    """A channel with the retry policy of Score; TLS with ``credentials``, else plaintext."""
    options = channel_options()
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


def _pem(source: PemSource | None) -> bytes | None:
    """PEM bytes as given (bytes, or text starting with "-----BEGIN"), or read from the file named."""
    if source is None or isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.startswith("-----BEGIN"):
        return source.encode()
    return Path(source).read_bytes()


def _is_loopback(target: str) -> bool:
    """Whether a gRPC target (``host:port``, ``dns:///host:port``, ``[::1]:port``, ``unix:path``) names
    this machine."""
    if target.startswith("unix:"):
        return True
    address = target.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    host = host.strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
