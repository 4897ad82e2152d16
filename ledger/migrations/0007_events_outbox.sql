-- Decision events (sentinel.events): destinations, their history, and the outbox of deliveries.
--
-- The outbox is written by the ledger's own group statement (ledger/lane.py): for every new entry, one
-- delivery row per active destination whose filters match, in the statement that records the entry, so
-- a decision is acknowledged if and only if its deliveries exist (docs/decisions/0017). With no
-- destination the join inserts nothing. Delivered rows are deleted; the table holds only what is still
-- to do (pending) and what gave up (dead), so it stays small.
--
-- Roles: the writer (the scoring path) may only INSERT deliveries and read the four columns of the
-- destinations its join needs, never a secret and never a delivery. sentinel_events (the dispatcher, the
-- EventsService and `sentinel events`) reads decisions, works the deliveries and manages destinations.
-- The tables live in the ledger schema because the owner role cannot create schemas (migration runner).

CREATE TABLE ledger.event_destinations (
    destination_id        text COLLATE "C" PRIMARY KEY CHECK (destination_id ~ '^[a-z0-9_]{1,64}$'),
    kind                  text NOT NULL CHECK (kind IN ('webhook', 'amqp')),
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description           text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    secret                text,              -- signing secret (webhooks); shown once, kept to sign
    previous_secret       text,              -- the secret before the last rotation, valid until:
    previous_secret_until timestamptz,
    outcomes              text[] NOT NULL DEFAULT '{}',    -- empty: every outcome
    event_types           text[] NOT NULL DEFAULT '{}',    -- empty: every event type
    active                boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'webhook') = (secret IS NOT NULL)),
    CHECK (outcomes <@ ARRAY['APPROVE', 'REVIEW', 'DECLINE'])
);
-- Destinations are disabled, never deleted: a delivery row names its destination for as long as it lives.
CREATE TRIGGER event_destinations_no_delete BEFORE DELETE ON ledger.event_destinations
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER event_destinations_no_truncate BEFORE TRUNCATE ON ledger.event_destinations
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

-- Every change of a destination, as the state after it (never a secret): append-only.
CREATE TABLE ledger.event_destination_history (
    change_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id text COLLATE "C" NOT NULL,
    change         text NOT NULL CHECK (change IN ('create', 'disable', 'enable', 'rotate_secret', 'update')),
    actor          text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    kind           text NOT NULL,
    url            text NOT NULL,
    outcomes       text[] NOT NULL,
    event_types    text[] NOT NULL,
    active         boolean NOT NULL
);
CREATE INDEX event_destination_history_destination ON ledger.event_destination_history (destination_id);
CREATE TRIGGER event_destination_history_append_only BEFORE UPDATE OR DELETE ON ledger.event_destination_history
    FOR EACH ROW EXECUTE FUNCTION ledger.reject_change();
CREATE TRIGGER event_destination_history_no_truncate BEFORE TRUNCATE ON ledger.event_destination_history
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.reject_change();

-- One row per (destination, event) still to deliver or given up on. delivery_id is drawn when the row is
-- inserted, i.e. inside the transaction recording the decision: a decision whose request was sent after
-- another's acknowledgement gets a larger id, which ledger sequences do not promise (each writer lane
-- draws its sequence numbers ahead). Per-account order follows delivery_id.
CREATE TABLE ledger.event_deliveries (
    destination_id  text COLLATE "C" NOT NULL,
    sequence        bigint NOT NULL,                 -- the ledger entry: the event id is evt_<sequence>
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY,
    account_id      text COLLATE "C" NOT NULL,
    recorded_at     timestamptz NOT NULL,            -- the entry's (partition key of ledger.decisions)
    enqueued_at     timestamptz NOT NULL DEFAULT now(),  -- recorded, or replayed: the lag counts from it
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    PRIMARY KEY (destination_id, sequence)
);
-- The dispatcher's claim: the earliest pending row of every account of a destination (events/outbox.py).
CREATE INDEX event_deliveries_account_order ON ledger.event_deliveries (destination_id, account_id, delivery_id)
    WHERE state = 'pending';

REVOKE ALL ON ledger.event_destinations, ledger.event_destination_history, ledger.event_deliveries FROM PUBLIC;
GRANT USAGE ON SCHEMA ledger TO sentinel_events;
GRANT SELECT ON ledger.decisions, ledger.schema_migrations TO sentinel_events;
GRANT SELECT, INSERT, UPDATE ON ledger.event_destinations TO sentinel_events;
GRANT SELECT, INSERT ON ledger.event_destination_history TO sentinel_events;
GRANT SELECT, INSERT, UPDATE, DELETE ON ledger.event_deliveries TO sentinel_events;
GRANT SELECT (destination_id, active, outcomes, event_types) ON ledger.event_destinations TO sentinel_ledger_writer;
GRANT INSERT ON ledger.event_deliveries TO sentinel_ledger_writer;
