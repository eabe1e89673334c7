-- The catalog of helpers_test.go as DDL, for running golden outputs against
-- a real PostgreSQL (TestGoldenOnPostgres, REWRITE_TEST_DSN).
CREATE TABLE public.customers (id integer PRIMARY KEY, name text, email character varying(200), ssn text, phone text, birth_date date);
CREATE TABLE public.accounts (id integer PRIMARY KEY, customer_id integer, iban text, balance numeric(12,2), opened_at timestamp with time zone);
CREATE TABLE public.transactions (id bigint PRIMARY KEY, account_id integer, amount numeric(12,2), merchant text, category text, booked_at timestamp with time zone);
CREATE TABLE public.support_tickets (id integer PRIMARY KEY, customer_id integer, assignee text, subject text, body text, status text);
CREATE TABLE public.countries (code character(2) PRIMARY KEY, name text);
CREATE TABLE public.audit_log (id bigint, note text);
CREATE VIEW public.account_summary AS SELECT customer_id, sum(balance) AS total FROM public.accounts GROUP BY customer_id;
CREATE VIEW public.country_names AS SELECT name FROM public.countries;
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Orders" ("Order Id" integer, "Customer" text, amount numeric);
CREATE FUNCTION public.leak(text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN RAISE NOTICE 'leak: %', $1; RETURN true; END $$;
CREATE FUNCTION public.safe_fn(text) RETURNS boolean LANGUAGE sql IMMUTABLE LEAKPROOF AS $$ SELECT true $$;
INSERT INTO public.customers SELECT g, 'name' || g, 'user' || g || '@example.com', '123-45-' || lpad(g::text, 4, '0'), '555-' || g, date '1980-01-01' + g FROM generate_series(1, 1000) g;
INSERT INTO public.accounts SELECT g, 1 + g % 1000, 'DE00' || lpad(g::text, 18, '0'), g * 10.5, timestamptz '2020-01-01' + g * interval '1 day' FROM generate_series(1, 1000) g;
INSERT INTO public.transactions SELECT g, 1 + g % 1000, g % 500, 'shop' || g % 7, (ARRAY['tax','income','food','medical'])[1 + g % 4], timestamptz '2023-06-01' + g * interval '1 hour' FROM generate_series(1, 20000) g;
INSERT INTO mandate.mask_keys (name, key) VALUES ('customer', decode(repeat('ab', 32), 'hex'));
ANALYZE;
