"""Load benchmarks of SentinelStream and of its parts."""
