-- Decisions the spool acknowledged whose idempotency key the ledger already held for another
-- transaction when the spool was replayed.
--
-- While Postgres is away, the service answers from the spool only for keys its Redis claims checked.
-- A claim lives idempotency_ttl_s; a key reused after its claim expired, during an outage, is
-- acknowledged, and only the replay finds that the ledger holds the key already. The acknowledged
-- decision is then kept here, exactly as answered, instead of being dropped: the caller holds it, so
-- the ledger must too. `sentinel ledger verify` reports these rows for someone to settle by hand.
-- Append-only like every ledger table; replaying a segment again inserts nothing new.

CREATE TABLE ledger.replay_conflicts (
    idempotency_key    text NOT NULL,
    fingerprint        bytea NOT NULL,
    transaction_id     text NOT NULL,
    account_id         text NOT NULL,
    transaction_bytes  bytea NOT NULL,
    decision_bytes     bytea NOT NULL,
    stored_fingerprint bytea,
    replayed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idempotency_key, fingerprint)
);

CREATE TRIGGER replay_conflicts_append_only BEFORE UPDATE OR DELETE ON ledger.replay_conflicts
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER replay_conflicts_no_truncate BEFORE TRUNCATE ON ledger.replay_conflicts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

REVOKE ALL ON ledger.replay_conflicts FROM PUBLIC;
GRANT SELECT, INSERT ON ledger.replay_conflicts TO sentinel_ledger_writer;
