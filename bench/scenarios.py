"""What `sentinel bench grpc` can measure: one scenario per way of calling ScoringService.

A scenario fixes the method, how many transactions one call carries and the default number of
calls in flight; from a ``TransactionFactory`` it builds the request messages of a call, which
the load tools then send (h2load as gRPC-framed bytes, ghz as JSON). A scenario may also fix how
many accounts its transactions use and ask for event times stamped when each call is sent
(``hot-account``: one account's state under maximal contention). ``overload`` measures the capacity
first and then offers a multiple of it (bench/overload.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from google.protobuf.message import Message

from sentinel.bench.payloads import PaysimRow, TransactionFactory
from sentinel.v1 import scoring_pb2

SERVICE = "sentinel.v1.ScoringService"
DEFAULT_STREAM_LENGTH = 5_000


@dataclass(frozen=True, slots=True)
class Scenario:
    """One way of calling ScoringService under load."""

    name: str
    method: str  # Score, ScoreBatch or ScoreStream
    transactions_per_call: int
    default_concurrency: int  # calls (or streams) in flight
    description: str
    accounts: int | None = None  # the accounts its transactions use, whatever --accounts says
    # Stamp every call with the time it is sent: one account's clock then only moves forward, which
    # only a tool that builds each call (grpcio) can do; tools replaying fixed data cannot.
    live_event_times: bool = False
    # Measure the capacity (closed loop), then offer this many times it (open loop): shedding.
    overload_factor: float | None = None

    @property
    def streaming(self) -> bool:
        """True when one call is a stream of messages, one transaction each."""
        return self.method == "ScoreStream"

    @property
    def path(self) -> str:
        """The HTTP/2 :path of the call."""
        return f"/{SERVICE}/{self.method}"

    @property
    def ghz_call(self) -> str:
        """The method as ghz's --call names it."""
        return f"{SERVICE}.{self.method}"

    def transaction_factory(self, rows: list[PaysimRow], seed: int, accounts: int) -> TransactionFactory:
        """The payload source: transactions over ``accounts`` accounts, unless the scenario fixes them."""
        return TransactionFactory(rows, seed=seed, accounts=self.accounts or accounts)

    def request_messages(self, factory: TransactionFactory, id_prefix: str) -> list[Message]:
        """The request messages of one call: one for unary methods, one per transaction for streams."""
        transactions = factory.transactions(self.transactions_per_call, id_prefix)
        if self.method == "Score":
            return [scoring_pb2.ScoreRequest(transaction=transactions[0])]
        if self.method == "ScoreBatch":
            return [scoring_pb2.ScoreBatchRequest(transactions=transactions)]
        return [scoring_pb2.ScoreStreamRequest(transaction=t) for t in transactions]

    def with_stream_length(self, length: int) -> Scenario:
        """The same scenario with ``length`` messages per stream (unary scenarios are unchanged)."""
        if not self.streaming:
            return self
        return replace(self, transactions_per_call=length)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("score", "Score", 1, 64, "unary Score, one transaction per call"),
        Scenario("batch-100", "ScoreBatch", 100, 16, "ScoreBatch, 100 transactions per call"),
        Scenario("batch-1000", "ScoreBatch", 1_000, 4, "ScoreBatch, 1,000 transactions per call"),
        Scenario(
            "stream",
            "ScoreStream",
            DEFAULT_STREAM_LENGTH,
            4,
            "ScoreStream, long streams of one transaction per message",
        ),
        Scenario(
            "hot-account",
            "Score",
            1,
            64,
            "unary Score, every transaction on one account (a fraud burst)",
            accounts=1,
            live_event_times=True,
        ),
        Scenario(
            "overload",
            "ScoreBatch",
            100,
            16,
            "ScoreBatch, 100 transactions per call, offered at 3 times the measured capacity (shedding)",
            overload_factor=3.0,
        ),
    )
}
# What --scenario all runs: the original four, so their figures stay comparable run after run;
# hot-account measures a worst case and overload a load beyond capacity; both need --tool grpcio and
# are run on their own.
ALL_SCENARIOS = ("score", "batch-100", "batch-1000", "stream")
