"""When to try a failed delivery again, and when to stop trying a destination for a while.

Retries back off exponentially with full jitter (a delay drawn uniformly between 0 and
``min(cap, base * 2**attempts)``), so the deliveries that failed together during an outage do not all
come back at the same moment. The circuit breaker is per destination and per dispatcher process:
``failures`` consecutive failed deliveries open it; while open the destination's deliveries are not
attempted at all (they stay pending, their retry clock untouched); after ``cooldown_s`` one delivery is
tried as a probe (half-open), and its result closes or reopens the circuit.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable


def retry_delay_s(
    attempts: int, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds until the next try of a delivery that has now failed ``attempts`` times (>= 1)."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempts - 1, 62))
    return ceiling * rng()


class CircuitState(enum.Enum):
    """Closed: deliver. Open: wait for the cool-down. Half-open: one probe delivery."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """The circuit of one destination in one dispatcher."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self._cooldown_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def wait_s(self) -> float:
        """Seconds until a delivery may be attempted (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown_s - self._clock())

    def record(self, succeeded: int, failed: int) -> None:
        """The results of one round of deliveries: any success closes the circuit, failures count up."""
        if succeeded:
            self._consecutive, self._opened_at = 0, None
            return
        if failed == 0:
            return
        self._consecutive += failed
        if self.state is CircuitState.HALF_OPEN or self._consecutive >= self._threshold:
            self._opened_at = self._clock()  # (re)opened: a failed probe waits a whole cool-down again
