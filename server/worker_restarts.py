"""``sentinel_worker_restarts_total``: how often the supervisor restarted a crashed worker.

Counted in the supervisor, the one process that sees a worker die, and exported by the supervisor's
/metrics registry beside the workers' summed metric files. It is a plain collector, not a
prometheus_client Counter: the supervisor imports prometheus_client before the multiprocess
directory is set, and a Counter defined in a module the workers import too would write metric files
of its own in every worker. It is exported (as 0) from the start, so that an alert on
``increase(...)`` sees the first restart.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class WorkerRestarts(Collector):
    """The supervisor's count of worker restarts (workers that died while the server was not stopping)."""

    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        """One more worker restarted."""
        self.count += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "sentinel_worker_restarts",
            "Workers the supervisor restarted after they died (worker_died in the logs).",
            value=self.count,
        )


WORKER_RESTARTS = WorkerRestarts()
