-- Fraud rules (owned by sentinel.server.rules; numbered from 0100 so that the ledger's own
-- migrations keep 0001-0099). Runs as sentinel_ledger_owner like every migration of the runner;
-- the service acts as sentinel_ledger_writer.
--
-- Every change of a rule (create, update, mode change, delete, rollback) inserts one immutable row
-- of rule_versions: the row is both the new version and the audit record of the change (who, when,
-- why, what kind of change, which version a rollback restored). Rows are never updated or deleted.
-- rule_set_state holds the rule set's generation: a counter bumped in the transaction of every
-- change (its row lock serializes writers, so generations commit in order), announced with
-- NOTIFY sentinel_rules and polled by the workers' watchers as a fallback.

CREATE TABLE ledger.rule_versions (
    rule_id       text NOT NULL CHECK (rule_id ~ '^[a-z0-9-]{1,64}$'),
    version       bigint NOT NULL CHECK (version >= 1),
    expression    text NOT NULL CHECK (length(expression) BETWEEN 1 AND 4000),
    action        text NOT NULL CHECK (action IN ('DECLINE', 'REVIEW', 'ALLOW', 'TAG')),
    priority      integer NOT NULL CHECK (priority BETWEEN 0 AND 1000),
    severity      double precision NOT NULL CHECK (severity >= 0 AND severity <= 1),
    mode          text NOT NULL CHECK (mode IN ('active', 'shadow', 'disabled')),
    description   text NOT NULL,
    author        text NOT NULL CHECK (length(author) BETWEEN 1 AND 128),
    comment       text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted       boolean NOT NULL DEFAULT false,
    change        text NOT NULL CHECK (change IN ('create', 'update', 'delete', 'rollback')),
    restored_from bigint CHECK ((change = 'rollback') = (restored_from IS NOT NULL)),
    generation    bigint NOT NULL UNIQUE,
    PRIMARY KEY (rule_id, version)
);

CREATE TRIGGER rule_versions_append_only BEFORE UPDATE OR DELETE ON ledger.rule_versions
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER rule_versions_no_truncate BEFORE TRUNCATE ON ledger.rule_versions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

CREATE TABLE ledger.rule_set_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL CHECK (generation >= 0)
);
INSERT INTO ledger.rule_set_state (singleton, generation) VALUES (true, 0);

CREATE TRIGGER rule_set_state_no_delete BEFORE DELETE ON ledger.rule_set_state
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER rule_set_state_no_truncate BEFORE TRUNCATE ON ledger.rule_set_state
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

GRANT SELECT, INSERT ON ledger.rule_versions TO sentinel_ledger_writer;
GRANT SELECT, UPDATE ON ledger.rule_set_state TO sentinel_ledger_writer;
