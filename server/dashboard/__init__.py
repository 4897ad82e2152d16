"""The ops dashboard: a read-only web page served by the supervisor on the metrics port, beside /metrics.

``http`` serves /metrics (the workers' aggregated metrics, as before), the page and its assets, a live
feed of figures (server-sent events) and a decision lookup; ``sampler`` computes the figures from
successive snapshots of the aggregated metrics (``figures``) and probes Redis and Postgres; ``lookup``
reads one decision from the ledger and checks its hash chain. See docs/decisions/0020-ops-dashboard.md.
"""
