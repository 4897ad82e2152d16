"""SentinelStream: real-time fraud scoring over gRPC.

Sub-packages map the repository's folders (see setup.py): ``sentinel.v1`` (generated gRPC
contract), ``sentinel.server``, ``sentinel.hotpath``, ``sentinel.ledger``,
``sentinel.model_export``, ``sentinel.clients`` and ``sentinel.bench``.
"""

__version__ = "0.1.0"
