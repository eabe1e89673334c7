-- 0002: the mask helper functions the rewriter injects (see rewrite/doc.go).
-- Helper functions for mandate's column masks. The rewriter injects calls to
-- them (schema-qualified) and refuses any user statement that names schema
-- mandate, so only injected SQL reaches them. Key material lives in
-- mandate.mask_keys and never appears in SQL text: masks refer to a key by
-- name. Requires PostgreSQL 11+ (built-in sha256); no extension needed.

CREATE SCHEMA IF NOT EXISTS mandate;

-- HMAC pads are derived once per key (RFC 2104), so a per-row hash is two
-- sha256() calls, not a loop.
CREATE OR REPLACE FUNCTION mandate.hmac_pad(key bytea, pad integer) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := key;
BEGIN
    IF octet_length(k) > 64 THEN
        k := sha256(k);
    END IF;
    k := k || decode(repeat('00', 64 - octet_length(k)), 'hex');
    FOR i IN 0..63 LOOP
        k := set_byte(k, i, get_byte(k, i) # pad);
    END LOOP;
    RETURN k;
END
$$;

CREATE TABLE IF NOT EXISTS mandate.mask_keys (
    name text PRIMARY KEY,
    key  bytea NOT NULL CHECK (octet_length(key) >= 32),
    ipad bytea GENERATED ALWAYS AS (mandate.hmac_pad(key, 54)) STORED,  -- 0x36
    opad bytea GENERATED ALWAYS AS (mandate.hmac_pad(key, 92)) STORED   -- 0x5c
);
REVOKE ALL ON mandate.mask_keys FROM PUBLIC;

-- HMAC-SHA256(key named key_name, value). NULL for a NULL value or an unknown
-- key name: a misconfigured mask hides the value rather than failing open.
CREATE OR REPLACE FUNCTION mandate.mask_hmac(value text, key_name text) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT sha256(k.opad || sha256(k.ipad || convert_to(value, 'UTF8')))
    FROM mandate.mask_keys k WHERE k.name = key_name
$$;

-- Text columns: 32 hex digits (128 bits of the HMAC).
CREATE OR REPLACE FUNCTION mandate.mask_hash(value text, key_name text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT left(encode(mandate.mask_hmac(value, key_name), 'hex'), 32)
$$;

-- Integer columns keep their type, so hashed keys still join and compare.
CREATE OR REPLACE FUNCTION mandate.mask_hash_int8(value text, key_name text) RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT ('x' || left(encode(mandate.mask_hmac(value, key_name), 'hex'), 16))::bit(64)::bigint
$$;

CREATE OR REPLACE FUNCTION mandate.mask_hash_int4(value text, key_name text) RETURNS integer
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT ('x' || left(encode(mandate.mask_hmac(value, key_name), 'hex'), 8))::bit(32)::integer
$$;

CREATE OR REPLACE FUNCTION mandate.mask_hash_int2(value text, key_name text) RETURNS smallint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT (('x' || left(encode(mandate.mask_hmac(value, key_name), 'hex'), 4))::bit(16)::integer - 32768)::smallint
$$;

CREATE OR REPLACE FUNCTION mandate.mask_hash_uuid(value text, key_name text) RETURNS uuid
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT left(encode(mandate.mask_hmac(value, key_name), 'hex'), 32)::uuid
$$;

REVOKE ALL ON FUNCTION mandate.hmac_pad(bytea, integer), mandate.mask_hmac(text, text) FROM PUBLIC;
