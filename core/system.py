"""Operating-system helpers used by the server and by the development harness alike.

A free loopback port (the supervisor's port 0, private services, test servers), the kernel's
parent-death signal (workers and private services must not outlive the process that started them) and
the back-off before a supervisor restarts a child that died (workers, event dispatchers, REST gateway).
"""

from __future__ import annotations

import ctypes
import functools
import os
import socket
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in a child between fork and exec


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(signum: int, parent: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent (pid ``parent``) dies (Linux).

    Without it a SIGKILLed ``sentinel dev serve`` leaves its workers and services running. The
    "parent" is the thread that started this process: a process started from a short-lived thread
    would die with that thread.
    """
    if _prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def with_parent_death_signal(signum: int) -> Callable[[], None]:
    """A ``preexec_fn`` applying ``die_with_parent`` to the child; it runs after the child's switch to
    another user (``Popen(user=...)``), which would clear the signal."""
    return functools.partial(die_with_parent, signum, os.getpid())


RESTART_BACKOFF_MAX_S = 5.0
RESTART_STABLE_AFTER_S = 60.0  # a child that ran this long restarts after the shortest wait again


class RestartBackoff:
    """How long a supervisor waits before restarting a child process that died: 0.2 s, doubling each time
    the child dies again, up to RESTART_BACKOFF_MAX_S, so that a child failing at start-up does not
    spin the machine."""

    def __init__(self) -> None:
        self._restarts: dict[object, int] = {}

    def delay_s(self, child: object, lived_s: float | None = None) -> float:
        """The wait before restarting ``child`` (any key naming it), which ran ``lived_s`` seconds; a
        child that ran RESTART_STABLE_AFTER_S counts as stable and starts over (None: never)."""
        stable = lived_s is not None and lived_s > RESTART_STABLE_AFTER_S
        restarts = 1 if stable else self._restarts.get(child, 0) + 1
        self._restarts[child] = restarts
        return min(RESTART_BACKOFF_MAX_S, 0.1 * 2 ** min(restarts, 6))
