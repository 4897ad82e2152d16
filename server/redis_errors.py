"""What a call to Redis raises when Redis, or the part of a Redis Cluster that holds a key, is out of reach.

redis-py's errors are not one family: a connection that fails raises ``ConnectionError`` (a
``RedisError``), a cluster that is failing over answers ``CLUSTERDOWN`` (``ClusterDownError``, a
``RedisError``), but a cluster client that finds slots without a live master, or no node at all,
raises ``SlotNotCoveredError`` or ``RedisClusterUnreachableError``, which derive from
``RedisClusterException`` and not from ``RedisError``. Every place that degrades instead of failing a
call when Redis is away (the state stage, the rate limiter, the dead-letter stream) catches all of them.
"""

from __future__ import annotations

from redis.exceptions import RedisClusterException, RedisError

REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError, TimeoutError)
