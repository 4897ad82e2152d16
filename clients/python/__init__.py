"""Python client library for SentinelStream (``from sentinel.clients import SentinelClient``)."""

from sentinel.clients.client import SentinelClient, channel_options, make_transaction, outcome_name

__all__ = ["SentinelClient", "channel_options", "make_transaction", "outcome_name"]
