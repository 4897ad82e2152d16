-- The decision ledger: chains, idempotency keys, decisions partitioned by month, balances.
-- Runs as sentinel_ledger_owner (the runner does SET LOCAL ROLE), so the owner, not the service,
-- owns every object. The service acts as sentinel_ledger_writer: INSERT and SELECT only, plus two
-- SECURITY DEFINER functions (balance movements, partition upkeep).

-- Rejects UPDATE/DELETE (row triggers) and TRUNCATE (statement triggers, since row triggers do not
-- fire on TRUNCATE). Privileges already stop the service; the triggers also stop the owner by
-- accident. A superuser can still bypass both (session_replication_role): `sentinel ledger verify`
-- catches what that changes.
CREATE FUNCTION ledger.reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger table %.% is append-only: % rejected', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- One hash chain per writer connection ("lane"); a new chain after every reconnect or failed batch.
CREATE TABLE ledger.chains (
    chain_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    writer     text NOT NULL
);

CREATE SEQUENCE ledger.entry_sequence AS bigint;

-- Global uniqueness of idempotency keys (a unique index on the partitioned table would have to
-- include the partition key). Points at the entry through (sequence, transaction_id, recorded_at).
CREATE TABLE ledger.idempotency_keys (
    idempotency_key text PRIMARY KEY,
    sequence        bigint NOT NULL,
    transaction_id  text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    fingerprint     bytea NOT NULL
);

CREATE TABLE ledger.decisions (
    sequence          bigint NOT NULL,
    chain_id          bigint NOT NULL,
    recorded_at       timestamptz NOT NULL,
    idempotency_key   text NOT NULL,
    transaction_id    text NOT NULL,
    fingerprint       bytea NOT NULL,
    account_id        text NOT NULL,
    counterparty_id   text NOT NULL,
    amount            numeric NOT NULL CHECK (amount > 0),
    currency          text NOT NULL,
    outcome           text NOT NULL CHECK (outcome IN ('APPROVE', 'REVIEW', 'DECLINE')),
    risk_score        double precision NOT NULL,
    model_score       double precision NOT NULL,
    model_version     text NOT NULL,
    rules_fired       text[] NOT NULL,
    reasons           text[] NOT NULL,
    degraded          boolean NOT NULL,
    decided_at        timestamptz NOT NULL,
    transaction_bytes bytea NOT NULL,
    decision_bytes    bytea NOT NULL,
    entry_hash        bytea NOT NULL
) PARTITION BY RANGE (recorded_at);

-- History of an account as origin or as counterparty (keyset on sequence), and lookup by id.
CREATE INDEX decisions_account_sequence ON ledger.decisions (account_id, sequence);
CREATE INDEX decisions_counterparty_sequence ON ledger.decisions (counterparty_id, sequence);
CREATE INDEX decisions_transaction ON ledger.decisions (transaction_id);

-- Derived from the approved decisions (verify recomputes it); changed only through
-- apply_balance_movements, never deleted.
CREATE TABLE ledger.balances (
    account_id    text NOT NULL,
    currency      text NOT NULL,
    amount        numeric NOT NULL,
    last_sequence bigint NOT NULL,
    PRIMARY KEY (account_id, currency)
);

CREATE TRIGGER chains_append_only BEFORE UPDATE OR DELETE ON ledger.chains
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER chains_no_truncate BEFORE TRUNCATE ON ledger.chains
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE OR DELETE ON ledger.idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER idempotency_keys_no_truncate BEFORE TRUNCATE ON ledger.idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();
-- Row triggers on a partitioned table are cloned onto every partition; TRUNCATE triggers are not
-- (ensure_partitions adds one to each partition).
CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON ledger.decisions
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON ledger.decisions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER balances_no_delete BEFORE DELETE ON ledger.balances
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER balances_no_truncate BEFORE TRUNCATE ON ledger.balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

-- Monthly partitions (UTC) from the month of p_from through p_months_ahead months later. Runs as
-- the owner so that the service can keep partitions ahead without CREATE privileges.
CREATE FUNCTION ledger.ensure_partitions(p_from timestamptz, p_months_ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ledger AS $$
DECLARE
    month_start timestamp := date_trunc('month', p_from AT TIME ZONE 'UTC');
    partition_name text;
    created integer := 0;
BEGIN
    FOR i IN 0 .. p_months_ahead LOOP
        partition_name := format('decisions_y%sm%s',
            to_char(month_start, 'YYYY'), to_char(month_start, 'MM'));
        IF to_regclass(format('ledger.%I', partition_name)) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('sentinel.ledger.ensure_partitions'));
            IF to_regclass(format('ledger.%I', partition_name)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE ledger.%I PARTITION OF ledger.decisions FOR VALUES FROM (%L) TO (%L)',
                    partition_name,
                    month_start AT TIME ZONE 'UTC',
                    (month_start + interval '1 month') AT TIME ZONE 'UTC');
                EXECUTE format(
                    'CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ledger.%I '
                    'FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change()', partition_name);
                created := created + 1;
            END IF;
        END IF;
        month_start := month_start + interval '1 month';
    END LOOP;
    RETURN created;
END
$$;

-- Adds signed movements to balances; rows arrive sorted by (account, currency) so that concurrent
-- writers lock balance rows in one order and cannot deadlock.
CREATE FUNCTION ledger.apply_balance_movements(
    p_accounts text[], p_currencies text[], p_deltas numeric[], p_sequences bigint[]
) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, ledger AS $$
    INSERT INTO ledger.balances AS b (account_id, currency, amount, last_sequence)
    SELECT * FROM unnest(p_accounts, p_currencies, p_deltas, p_sequences)
    ON CONFLICT (account_id, currency) DO UPDATE
    SET amount = b.amount + excluded.amount,
        last_sequence = greatest(b.last_sequence, excluded.last_sequence);
$$;

SELECT ledger.ensure_partitions(now(), 2);

REVOKE ALL ON ALL TABLES IN SCHEMA ledger FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.ensure_partitions(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.apply_balance_movements(text[], text[], numeric[], bigint[]) FROM PUBLIC;
GRANT SELECT, INSERT ON ledger.chains, ledger.idempotency_keys, ledger.decisions TO sentinel_ledger_writer;
GRANT SELECT ON ledger.balances, ledger.schema_migrations TO sentinel_ledger_writer;
GRANT USAGE ON SEQUENCE ledger.entry_sequence TO sentinel_ledger_writer;
GRANT EXECUTE ON FUNCTION ledger.ensure_partitions(timestamptz, integer) TO sentinel_ledger_writer;
GRANT EXECUTE ON FUNCTION ledger.apply_balance_movements(text[], text[], numeric[], bigint[])
    TO sentinel_ledger_writer;
