"""The Redis Cluster client of the workers: redis-py's, with ASK redirects that reach their target.

While a slot migrates (``redis-cli --cluster reshard``), its old master answers ASK for a key it no
longer holds, and the client must send ``ASKING`` and then the command *on the same connection* to the
new master; without ASKING the new master answers MOVED back to the old one. redis-py's asyncio
cluster client sends ASKING as a command of its own, on a connection taken from the node's pool and
put back, then takes a connection again for the command: the pool is first-in first-out, so with
several connections open (any busy worker) the command goes out on another one, and the client
bounces between the two masters until it gives up ("TTL exhausted"; tests/test_state_store.py,
``test_a_slot_in_migration_is_followed_with_ask_then_moved``, fails that way without this module).

``AskingConnection`` keeps the ASKING that the client asks for on its task and sends it in one write
with that task's next command, on whatever connection that command gets, and reads its reply first.
"""

from __future__ import annotations

import contextvars
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

_ASKING = b"*1\r\n$6\r\nASKING\r\n"
# Set by the ASKING the client sends for an ASK redirect; taken by the task's next command.
_asking_pending: contextvars.ContextVar[bool] = contextvars.ContextVar("asking_pending", default=False)


class AskingConnection(Connection):
    """A connection that sends a task's ASKING together with the command after it (module docstring)."""

    _fake_reply = False  # the last command was an ASKING held back: its reply is ours to give
    _asking_reply = False  # the last write began with an ASKING whose reply comes first

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else command
        if packed == _ASKING:
            _asking_pending.set(True)
            self._fake_reply = True
            return
        if not _asking_pending.get():
            await super().send_packed_command(command, check_health)
            return
        _asking_pending.set(False)
        command = [_ASKING, packed.encode() if isinstance(packed, str) else packed]
        # Only now: a connection opened by this send reads the replies of its handshake first.
        await super().send_packed_command(command, check_health)
        self._asking_reply = True

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if self._fake_reply:
            self._fake_reply = False
            return b"OK"
        if self._asking_reply:
            self._asking_reply = False
            await super().read_response(*args, **kwargs)  # ASKING's OK (an error raises here)
        return await super().read_response(*args, **kwargs)

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._fake_reply = self._asking_reply = False
        await super().disconnect(*args, **kwargs)


def cluster_client(url: str, *, timeout_s: float | None = None) -> RedisCluster:
    """The cluster client of ``url`` (any node), whose every node connects with ``AskingConnection``.

    It follows MOVED and ASK and waits out TRYAGAIN (a slot being resharded), but never repeats a
    command after a connection error, a timeout or CLUSTERDOWN: the state scripts append to journals
    and the rate limiter takes tokens, and a command whose connection broke may have run (its master
    killed after it ran, and the replica that took over has it); run again, it would count twice. The
    caller degrades instead (decision 0021), and its next command finds the topology refreshed."""
    client = RedisCluster.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), retries=0)
    )
    client.nodes_manager.connection_kwargs["connection_class"] = AskingConnection  # nodes found later
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = AskingConnection  # before its first connection
    return client
