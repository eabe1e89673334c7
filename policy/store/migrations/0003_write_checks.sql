-- 0003: the write check the rewriter injects (see rewrite/doc.go, "Writes").
-- INSERT, UPDATE, ON CONFLICT DO UPDATE and COPY FROM into a protected
-- relation call mandate.deny_unless(<write filter over the new row>, '<relation>')
-- once per new row; a row outside the caller's write scope aborts the whole
-- statement with SQLSTATE 42501, like a row-level security WITH CHECK, so
-- nothing is written. The rewriter refuses any user statement that names
-- schema mandate, so only injected SQL reaches it.

CREATE SCHEMA IF NOT EXISTS mandate;

-- Returns true when ok is true and raises otherwise. Deliberately not STRICT:
-- a NULL check (a comparison with NULL) must raise, never yield NULL and let
-- the caller's WHERE merely skip the row. VOLATILE so the planner never
-- folds, hoists or skips a call whose arguments look constant.
CREATE OR REPLACE FUNCTION mandate.deny_unless(ok boolean, relation text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF ok IS TRUE THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'new row violates mandate write policy for relation "%"', relation
        USING ERRCODE = '42501',
              HINT = 'The row would fall outside the rows you may write.';
END
$$;

-- Any role the proxy connects upstream as must be able to run the check, as
-- it can run the mask helpers of 0002 (schema usage is granted where the
-- deployment grants it for those).
GRANT EXECUTE ON FUNCTION mandate.deny_unless(boolean, text) TO PUBLIC;
