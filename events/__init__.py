"""Decision events: the outbox the ledger writes, subscriptions, and the dispatcher delivering them.

Every recorded decision gets one delivery row per matching destination in the same statement that
records it (see docs/decisions/0017-decision-events-outbox.md); ``sentinel events dispatch`` delivers
those rows to webhooks (signed HTTPS POST) and to RabbitMQ (``sentinel.events.amqp``), at least once,
in order per account.
"""
