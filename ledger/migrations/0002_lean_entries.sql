-- Entry format 2: an entry is its key, the two protobuf blobs and the columns the ledger queries.
--
-- The blobs (the serialized sentinel.v1 Transaction and Decision) are the record; the columns next to
-- them are projections for indexes, balances and SQL analysis, and `sentinel ledger verify` checks every
-- projection against the blobs. Format 1 also kept model score, model version, rules fired, reasons,
-- degraded and decided_at as columns: copies of fields of the Decision blob that nothing queries, which
-- cost a fifth of the writer's encoding (two text[] arrays per row) and hashed the same facts twice.
-- The entry hash now covers sequence, chain, recorded_at, key and both blobs (see chain.py).
--
-- Balances: the movements arrive per entry (origin, counterparty, currency, amount, sequence) and are
-- netted here, in SQL, instead of in the writer's Python.
--
-- Format 1 existed only in pre-release builds; its hashes cannot be recomputed without the dropped
-- columns, so a ledger that already holds format-1 entries is refused rather than silently made
-- unverifiable.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger.decisions) THEN
        RAISE EXCEPTION 'this ledger holds entries of the pre-release entry format 1: run '
            '`sentinel ledger verify` with the release that wrote them, keep an export, and migrate a new '
            'database'
            USING ERRCODE = 'feature_not_supported';
    END IF;
END
$$;

ALTER TABLE ledger.decisions
    DROP COLUMN model_score,
    DROP COLUMN model_version,
    DROP COLUMN rules_fired,
    DROP COLUMN reasons,
    DROP COLUMN degraded,
    DROP COLUMN decided_at;

-- The stored fingerprint of a key is its entry's: no second copy.
ALTER TABLE ledger.idempotency_keys DROP COLUMN fingerprint;

-- Identifiers compare byte-wise ("C" collation): every write walks five B-trees keyed by them, and a
-- linguistic collation makes each comparison a locale call for an order nobody reads. Equality, the
-- only thing the ledger asks of them, is the same either way.
ALTER TABLE ledger.decisions
    ALTER COLUMN idempotency_key TYPE text COLLATE "C",
    ALTER COLUMN transaction_id TYPE text COLLATE "C",
    ALTER COLUMN account_id TYPE text COLLATE "C",
    ALTER COLUMN counterparty_id TYPE text COLLATE "C";
ALTER TABLE ledger.idempotency_keys
    ALTER COLUMN idempotency_key TYPE text COLLATE "C",
    ALTER COLUMN transaction_id TYPE text COLLATE "C";
ALTER TABLE ledger.balances
    ALTER COLUMN account_id TYPE text COLLATE "C",
    ALTER COLUMN currency TYPE text COLLATE "C";

-- GetDecision looks a transaction id up by equality only: a hash index costs each write less than a
-- B-tree over the same text.
DROP INDEX ledger.decisions_transaction;
CREATE INDEX decisions_transaction ON ledger.decisions USING hash (transaction_id);

DROP FUNCTION ledger.apply_balance_movements(text[], text[], numeric[], bigint[]);

-- Adds the movements of approved entries to balances: each entry debits its origin and credits its
-- counterparty (an empty counterparty is not an account: the money leaves the ledger). Netted per
-- (account, currency) and inserted in that order, so concurrent writers lock balance rows in one
-- order and cannot deadlock. PL/pgSQL rather than SQL: it keeps the statement's plan for the session,
-- where a SQL function with its own search_path is planned again on every call (a fixed cost every
-- small group would pay).
CREATE FUNCTION ledger.apply_balance_movements(
    p_accounts text[], p_counterparties text[], p_currencies text[], p_amounts numeric[],
    p_sequences bigint[]
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ledger AS $$
BEGIN
    INSERT INTO ledger.balances AS b (account_id, currency, amount, last_sequence)
    SELECT account_id, currency, sum(delta), max(sequence)
    FROM (
        SELECT account, currency, -amount, sequence
        FROM unnest(p_accounts, p_currencies, p_amounts, p_sequences) AS m(account, currency, amount, sequence)
        UNION ALL
        SELECT account, currency, amount, sequence
        FROM unnest(p_counterparties, p_currencies, p_amounts, p_sequences)
            AS m(account, currency, amount, sequence)
        WHERE account <> ''
    ) AS movements (account_id, currency, delta, sequence)
    GROUP BY account_id, currency
    ORDER BY account_id COLLATE "C", currency COLLATE "C"
    ON CONFLICT (account_id, currency) DO UPDATE
    SET amount = b.amount + excluded.amount,
        last_sequence = greatest(b.last_sequence, excluded.last_sequence);
END
$$;

REVOKE ALL ON FUNCTION ledger.apply_balance_movements(text[], text[], text[], numeric[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.apply_balance_movements(text[], text[], text[], numeric[], bigint[])
    TO sentinel_ledger_writer;
