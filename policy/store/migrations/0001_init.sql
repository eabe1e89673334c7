-- 0001: live policy state — delegations, consents, agents — and the change
-- broadcast every proxy replica listens to. Runs inside one transaction,
-- after Migrate has created the mandate schema.

-- One row whose generation grows with every change; watchers compare it to
-- skip reloads (a cheap freshness probe) and notifications carry it.
CREATE TABLE mandate.state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL DEFAULT 0
);
INSERT INTO mandate.state DEFAULT VALUES;

-- Keys of a JSON object as an array, for CHECK constraints (which cannot
-- hold subqueries). NULL for non-objects so the type check reports first.
CREATE FUNCTION mandate.jsonb_keys(j jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(j) = 'object'
                THEN coalesce((SELECT array_agg(k) FROM jsonb_object_keys(j) AS k), '{}')
           END
$$;

CREATE TABLE mandate.delegations (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    grantor        text        NOT NULL,
    delegate       text        NOT NULL,
    tables         text[]      NOT NULL,
    actions        text[]      NOT NULL,
    columns        text[]      NOT NULL DEFAULT '{}',
    row_constraint jsonb       NOT NULL DEFAULT '{}',
    purpose        text        NOT NULL DEFAULT '',
    not_before     timestamptz,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT delegations_parties_named CHECK (grantor <> '' AND delegate <> ''),
    CONSTRAINT delegations_not_self CHECK (grantor <> delegate),
    CONSTRAINT delegations_tables_named CHECK (
        cardinality(tables) > 0 AND array_position(tables, NULL) IS NULL AND NOT '' = ANY (tables)),
    CONSTRAINT delegations_actions_valid CHECK (
        cardinality(actions) > 0 AND actions <@ ARRAY['select', 'insert', 'update', 'delete']),
    CONSTRAINT delegations_columns_named CHECK (
        array_position(columns, NULL) IS NULL AND NOT '' = ANY (columns)),
    CONSTRAINT delegations_row_constraint_valid CHECK (
        jsonb_typeof(row_constraint) = 'object'
        AND NOT jsonb_path_exists(row_constraint, '$.* ? (@.type() != "string")')
        AND mandate.jsonb_keys(row_constraint) <@ tables),
    CONSTRAINT delegations_window_valid CHECK (expires_at > not_before),
    CONSTRAINT delegations_revoked_after_created CHECK (revoked_at >= created_at)
);
CREATE INDEX delegations_pair ON mandate.delegations (grantor, delegate);
CREATE INDEX delegations_live ON mandate.delegations (expires_at) WHERE revoked_at IS NULL;
CREATE INDEX delegations_revoked ON mandate.delegations (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE mandate.consents (
    subject    text        NOT NULL,
    purpose    text        NOT NULL,
    granted    boolean     NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (subject, purpose),
    CONSTRAINT consents_named CHECK (subject <> '' AND purpose <> '')
);
CREATE INDEX consents_purpose ON mandate.consents (purpose) WHERE granted;

-- Append-only record of every consent answer, for audit.
CREATE TABLE mandate.consent_history (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject    text        NOT NULL,
    purpose    text        NOT NULL,
    granted    boolean     NOT NULL,
    changed_at timestamptz NOT NULL
);
CREATE INDEX consent_history_subject ON mandate.consent_history (subject, purpose, seq);

CREATE TABLE mandate.agents (
    id          text        PRIMARY KEY,
    owner       text        NOT NULL,
    tables      text[]      NOT NULL,
    actions     text[]      NOT NULL,
    masked      text[]      NOT NULL DEFAULT '{}',
    disabled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT agents_named CHECK (id <> '' AND owner <> ''),
    CONSTRAINT agents_tables_named CHECK (
        cardinality(tables) > 0 AND array_position(tables, NULL) IS NULL AND NOT '' = ANY (tables)),
    CONSTRAINT agents_actions_valid CHECK (
        cardinality(actions) > 0 AND actions <@ ARRAY['select', 'insert', 'update', 'delete']),
    CONSTRAINT agents_masked_named CHECK (
        array_position(masked, NULL) IS NULL AND NOT '' = ANY (masked)),
    CONSTRAINT agents_disabled_after_created CHECK (disabled_at >= created_at)
);

-- A grant is a record of what was agreed: once written, only its end may be
-- set, once. Re-scoping means revoking and granting anew, so the audit log's
-- delegation id always names one fixed scope.
CREATE FUNCTION mandate.freeze_except_end() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    end_col text := TG_ARGV[0];
BEGIN
    IF to_jsonb(OLD) ->> end_col IS NOT NULL THEN
        RAISE EXCEPTION '% % has already ended at %', TG_ARGV[1], to_jsonb(OLD) ->> 'id', to_jsonb(OLD) ->> end_col
            USING ERRCODE = '55000';
    END IF;
    IF (to_jsonb(NEW) - end_col) IS DISTINCT FROM (to_jsonb(OLD) - end_col) THEN
        RAISE EXCEPTION '% % cannot be changed, only ended (set %)', TG_ARGV[1], to_jsonb(OLD) ->> 'id', end_col
            USING ERRCODE = '55000';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER delegations_freeze BEFORE UPDATE ON mandate.delegations
    FOR EACH ROW EXECUTE FUNCTION mandate.freeze_except_end('revoked_at', 'delegation');
CREATE TRIGGER agents_freeze BEFORE UPDATE ON mandate.agents
    FOR EACH ROW EXECUTE FUNCTION mandate.freeze_except_end('disabled_at', 'agent');

CREATE FUNCTION mandate.record_consent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mandate.consent_history (subject, purpose, granted, changed_at)
    VALUES (NEW.subject, NEW.purpose, NEW.granted, NEW.changed_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER consents_history AFTER INSERT OR UPDATE ON mandate.consents
    FOR EACH ROW EXECUTE FUNCTION mandate.record_consent();

-- The broadcast. NOTIFY is transactional: listeners hear it only once the
-- change commits, and never for a rolled-back one. Payload (JSON):
--   kind       "delegation" | "consent" | "agent"
--   op         "insert" | "update" | "delete" | "truncate"
--   id         delegation id, consent purpose, agent id (absent for truncate)
--   subject    grantor, consent subject, agent owner (absent for truncate)
--   generation mandate.state.generation after this change
--   at         clock_timestamp() of the change, RFC 3339 UTC
CREATE FUNCTION mandate.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gen  bigint;
    rec  jsonb;
    kind text := CASE TG_TABLE_NAME
                     WHEN 'delegations' THEN 'delegation'
                     WHEN 'consents' THEN 'consent'
                     WHEN 'agents' THEN 'agent'
                 END;
BEGIN
    UPDATE mandate.state SET generation = generation + 1 RETURNING generation INTO gen;
    IF TG_LEVEL = 'ROW' THEN
        rec := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
    END IF;
    PERFORM pg_notify('mandate_state', jsonb_strip_nulls(jsonb_build_object(
        'kind', kind,
        'op', lower(TG_OP),
        'id', CASE kind WHEN 'consent' THEN rec ->> 'purpose' ELSE rec ->> 'id' END,
        'subject', CASE kind WHEN 'delegation' THEN rec ->> 'grantor'
                             WHEN 'consent' THEN rec ->> 'subject'
                             ELSE rec ->> 'owner' END,
        'generation', gen,
        'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    ))::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER delegations_notify AFTER INSERT OR UPDATE OR DELETE ON mandate.delegations
    FOR EACH ROW EXECUTE FUNCTION mandate.notify_change();
CREATE TRIGGER delegations_notify_truncate AFTER TRUNCATE ON mandate.delegations
    FOR EACH STATEMENT EXECUTE FUNCTION mandate.notify_change();
CREATE TRIGGER consents_notify AFTER INSERT OR UPDATE OR DELETE ON mandate.consents
    FOR EACH ROW EXECUTE FUNCTION mandate.notify_change();
CREATE TRIGGER consents_notify_truncate AFTER TRUNCATE ON mandate.consents
    FOR EACH STATEMENT EXECUTE FUNCTION mandate.notify_change();
CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE ON mandate.agents
    FOR EACH ROW EXECUTE FUNCTION mandate.notify_change();
CREATE TRIGGER agents_notify_truncate AFTER TRUNCATE ON mandate.agents
    FOR EACH STATEMENT EXECUTE FUNCTION mandate.notify_change();
