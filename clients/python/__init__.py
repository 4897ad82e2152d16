"""Python client library for SentinelStream."""
