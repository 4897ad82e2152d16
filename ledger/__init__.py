"""The append-only, idempotent Postgres ledger and its group-commit writer."""
