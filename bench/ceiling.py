"""The gRPC ceiling: a ScoringService that does nothing, served exactly like SentinelStream.

SentinelStream's throughput only means something next to what grpc.aio itself can do on the same
machine with the same worker setup: N spawned worker processes sharing one port with
SO_REUSEPORT, each on its own uvloop event loop, with the server's own channel options. This
server parses every request (any servicer gets parsed messages) and answers with empty messages of
the right shape: an empty ScoreResponse, one empty result per batch item, one response per stream
message carrying only the transaction id. It counts the calls it completed in shared memory, so
the benchmark can check the load tool's success count against the server's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import AsyncIterator
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from sentinel.bench.measurement import ServerCounts
from sentinel.config import Settings
from sentinel.serverprocess import ServerStartError
from sentinel.system import free_port

# Per-worker counter slots in the shared array.
_SCORE, _BATCH, _STREAM = range(3)
_SLOTS_PER_WORKER = 3
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 2.0


def _servicer(counters: Any, base: int) -> Any:
    """The do-nothing ScoringService of one worker, counting into ``counters[base:base+3]``."""
    from sentinel.v1 import scoring_pb2, scoring_pb2_grpc

    class CeilingServicer(scoring_pb2_grpc.ScoringServiceServicer):
        async def Score(self, request: Any, context: Any) -> Any:
            counters[base + _SCORE] += 1
            return scoring_pb2.ScoreResponse()

        async def ScoreBatch(self, request: Any, context: Any) -> Any:
            response = scoring_pb2.ScoreBatchResponse()
            for _ in range(len(request.transactions)):
                response.results.add()
            counters[base + _BATCH] += 1
            return response

        async def ScoreStream(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
            async for request in request_iterator:
                yield scoring_pb2.ScoreStreamResponse(transaction_id=request.transaction.transaction_id)
            counters[base + _STREAM] += 1

    return CeilingServicer()


async def _serve(
    settings: Settings, port: int, reuse_port: bool, counters: Any, worker: int, ready: Any
) -> None:
    import grpc
    from grpc_reflection.v1alpha import reflection

    from sentinel.server.app import server_options
    from sentinel.v1 import scoring_pb2, scoring_pb2_grpc

    server = grpc.aio.server(options=server_options(settings, reuse_port))
    scoring_pb2_grpc.add_ScoringServiceServicer_to_server(
        _servicer(counters, worker * _SLOTS_PER_WORKER), server
    )
    service = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
    reflection.enable_server_reflection((service, reflection.SERVICE_NAME), server)
    if server.add_insecure_port(f"{settings.host}:{port}") == 0:
        raise OSError(f"ceiling server cannot bind {settings.host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ready.set()
    await stop.wait()
    await server.stop(STOP_GRACE_S)


def _worker_main(
    settings: Settings, port: int, reuse_port: bool, counters: Any, worker: int, ready: Any
) -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the benchmark stops its workers itself
    uvloop.run(_serve(settings, port, reuse_port, counters, worker, ready))


class CeilingServer:
    """N spawned do-nothing workers on one loopback port; a context manager that stops them."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings.model_copy(update={"host": "127.0.0.1", "workers": workers})
        self.workers = workers
        self.port = free_port()
        self._context = multiprocessing.get_context("spawn")
        self._counters = self._context.RawArray("q", workers * _SLOTS_PER_WORKER)
        self._processes: list[BaseProcess] = []

    @property
    def address(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.port}"

    @property
    def pids(self) -> set[int]:
        """The worker processes' ids."""
        return {process.pid for process in self._processes if process.pid is not None}

    def start(self) -> CeilingServer:
        """Spawn the workers and wait until every one is serving."""
        events = []
        for worker in range(self.workers):
            ready = self._context.Event()
            process = self._context.Process(
                target=_worker_main,
                args=(self.settings, self.port, self.workers > 1, self._counters, worker, ready),
                name=f"sentinel-ceiling-{worker}",
            )
            process.start()
            self._processes.append(process)
            events.append((process, ready))
        for process, ready in events:
            if not ready.wait(READY_TIMEOUT_S):
                self.stop()
                raise ServerStartError(
                    f"ceiling worker {process.name} did not start (exit {process.exitcode})"
                )
        return self

    def counts(self) -> ServerCounts:
        """Completed calls so far, over all workers (the ceiling never fails a call it handles)."""
        totals = [0] * _SLOTS_PER_WORKER
        for index, value in enumerate(self._counters[:]):
            totals[index % _SLOTS_PER_WORKER] += value
        return ServerCounts(
            {
                ("Score", "OK"): totals[_SCORE],
                ("ScoreBatch", "OK"): totals[_BATCH],
                ("ScoreStream", "OK"): totals[_STREAM],
            }
        )

    def stop(self) -> None:
        """SIGTERM every worker, give it the grace period, then kill what is left."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(STOP_GRACE_S + 3.0)
            if process.is_alive():
                process.kill()
                process.join()
        self._processes.clear()

    def __enter__(self) -> CeilingServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
