-- A group of new entries travels as ONE array of composite rows instead of thirteen column arrays.
--
-- The writer's driver (asyncpg) checks every element of an array parameter for being a nested array
-- with Python-level isinstance calls against collections.abc: thirteen column arrays cost about
-- twenty-four such calls per entry, an array of rows three. The rows feed both the entries insert
-- and the balance update, so the balance function takes them as they are instead of five arrays
-- rebuilt with array_agg.
CREATE TYPE ledger.entry_row AS (
    sequence          bigint,
    idempotency_key   text,
    transaction_id    text,
    fingerprint       bytea,
    account_id        text,
    counterparty_id   text,
    amount            text,     -- exact decimal text: cast to numeric where stored
    currency          text,
    outcome           text,
    risk_score        double precision,
    transaction_bytes bytea,
    decision_bytes    bytea,
    entry_hash        bytea
);

DROP FUNCTION ledger.apply_balance_movements(text[], text[], text[], numeric[], bigint[]);

-- Adds the movements of the approved entries among p_entries to balances: each debits its origin and
-- credits its counterparty (an empty counterparty is not an account: the money leaves the ledger).
-- Netted per (account, currency) and applied in that order, so concurrent writers lock balance rows
-- in one order and cannot deadlock. PL/pgSQL: it keeps the statement's plan for the session.
CREATE FUNCTION ledger.apply_balance_movements(p_entries ledger.entry_row[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ledger AS $$
BEGIN
    INSERT INTO ledger.balances AS b (account_id, currency, amount, last_sequence)
    SELECT account_id, currency, sum(delta), max(sequence)
    FROM (
        SELECT e.account_id, e.currency, -e.amount::numeric, e.sequence
        FROM unnest(p_entries) AS e
        WHERE e.outcome = 'APPROVE'
        UNION ALL
        SELECT e.counterparty_id, e.currency, e.amount::numeric, e.sequence
        FROM unnest(p_entries) AS e
        WHERE e.outcome = 'APPROVE' AND e.counterparty_id <> ''
    ) AS movements (account_id, currency, delta, sequence)
    GROUP BY account_id, currency
    ORDER BY account_id COLLATE "C", currency COLLATE "C"
    ON CONFLICT (account_id, currency) DO UPDATE
    SET amount = b.amount + excluded.amount,
        last_sequence = greatest(b.last_sequence, excluded.last_sequence);
END
$$;

REVOKE ALL ON FUNCTION ledger.apply_balance_movements(ledger.entry_row[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.apply_balance_movements(ledger.entry_row[]) TO sentinel_ledger_writer;
