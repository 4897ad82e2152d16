-- Chain checkpoints: heads of the hash chains recorded by the owner, never by the service.
--
-- The writer role may INSERT entries, chains and keys, so it can write a new chain whose hashes,
-- keys and balances all agree, dated in the past: the chains alone cannot tell it from history.
-- A checkpoint is what the ledger held when it was taken: `sentinel ledger checkpoint` (run on a
-- schedule with the owner's credentials) records the head (sequence, hash) of every chain that moved
-- since the previous checkpoint. `sentinel ledger verify` then requires every recorded head to still
-- be in its chain, and every entry dated before a checkpoint (less the in-flight grace the command
-- passes) to be covered by that checkpoint's heads.
--
-- Only the owner writes here: the writer role can read, and neither can change a row (the same
-- ledger.reject_change triggers as every ledger table).

CREATE TABLE ledger.checkpoints (
    checkpoint_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per chain whose head moved since the previous checkpoint: unchanged chains keep the head an
-- earlier checkpoint recorded, so the table grows with activity, not with chains times checkpoints.
CREATE TABLE ledger.checkpoint_heads (
    checkpoint_id bigint NOT NULL REFERENCES ledger.checkpoints,
    chain_id      bigint NOT NULL,
    sequence      bigint NOT NULL,
    entry_hash    bytea NOT NULL,
    PRIMARY KEY (checkpoint_id, chain_id)
);
CREATE INDEX checkpoint_heads_chain_sequence ON ledger.checkpoint_heads (chain_id, sequence);

CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger.checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON ledger.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER checkpoint_heads_append_only BEFORE UPDATE OR DELETE ON ledger.checkpoint_heads
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER checkpoint_heads_no_truncate BEFORE TRUNCATE ON ledger.checkpoint_heads
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

-- Records a checkpoint; returns its id. Not SECURITY DEFINER: it runs with the caller's rights, and
-- only the owner may insert. The heads are looked for among the entries recorded since the previous
-- checkpoint less p_in_flight (a group may commit a little after its recorded_at): an earlier entry
-- that no checkpoint holds is one verify reports anyway, and the scan stays within recent partitions.
-- The table lock serializes concurrent runs, so each sees the previous one.
CREATE FUNCTION ledger.take_checkpoint(p_in_flight interval) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, ledger AS $$
DECLARE
    since timestamptz;
    taken bigint;
BEGIN
    LOCK TABLE ledger.checkpoints IN SHARE ROW EXCLUSIVE MODE;
    SELECT max(taken_at) - p_in_flight INTO since FROM ledger.checkpoints;
    INSERT INTO ledger.checkpoints DEFAULT VALUES RETURNING checkpoint_id INTO taken;
    INSERT INTO ledger.checkpoint_heads (checkpoint_id, chain_id, sequence, entry_hash)
    SELECT taken, head.chain_id, head.sequence, head.entry_hash
    FROM (
        SELECT DISTINCT ON (d.chain_id) d.chain_id, d.sequence, d.entry_hash
        FROM ledger.decisions AS d
        WHERE d.recorded_at >= coalesce(since, '-infinity')
        ORDER BY d.chain_id, d.sequence DESC
    ) AS head
    WHERE NOT EXISTS (SELECT 1 FROM ledger.checkpoint_heads AS c
                      WHERE c.chain_id = head.chain_id AND c.sequence >= head.sequence);
    RETURN taken;
END
$$;

REVOKE ALL ON ledger.checkpoints, ledger.checkpoint_heads FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.take_checkpoint(interval) FROM PUBLIC;
GRANT SELECT ON ledger.checkpoints, ledger.checkpoint_heads TO sentinel_ledger_writer;
