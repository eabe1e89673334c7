"""psycopg2 through mandate: the conformance scenario as a normalized
transcript. Connection settings come from PG* variables (libpq)."""
import sys

import psycopg2
import psycopg2.errors

RELATIONS = """SELECT n.nspname, c.relname, c.relkind
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1, 2"""

# pgAdmin 4's connection-time queries (web/pgadmin/utils/driver/psycopg*).
PGADMIN_DB = """SELECT db.oid AS did, db.datname, db.datallowconn,
       pg_catalog.pg_encoding_to_char(db.encoding) AS serverencoding,
       pg_catalog.has_database_privilege(db.oid, 'CREATE') AS cancreate, datistemplate
  FROM pg_catalog.pg_database db WHERE db.datname = pg_catalog.current_database()"""
PGADMIN_ROLE = """SELECT roles.oid AS id, roles.rolname AS name, roles.rolsuper AS is_superuser,
       CASE WHEN roles.rolsuper THEN true ELSE roles.rolcreaterole END AS can_create_role,
       CASE WHEN roles.rolsuper THEN true ELSE roles.rolcreatedb END AS can_create_db
  FROM pg_catalog.pg_roles AS roles WHERE rolname = current_user"""
PGADMIN_RECOVERY = """SELECT CASE WHEN usesuper THEN pg_catalog.pg_is_in_recovery() ELSE NULL END AS inrecovery,
       CASE WHEN usesuper AND pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_is_wal_replay_paused() ELSE NULL END AS isreplaypaused
  FROM pg_catalog.pg_user WHERE usename = current_user"""


def out(label, value):
    print(f"{label}: {value}")


def rows_text(rows):
    return ", ".join(" ".join(str(v) for v in row) for row in rows)


def one(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def step(conn, label, fn):
    """Prints fn's result, or its error (and rolls back), and goes on."""
    try:
        out(label, fn())
    except psycopg2.Error as e:
        out(label, f"error {e.pgcode} {(e.pgerror or '').strip().splitlines()[0]}")
        conn.rollback()


def fetch(cur, sql):
    cur.execute(sql)
    return cur.fetchall()


def main():
    conn = psycopg2.connect("")  # libpq reads PG* from the environment
    cur = conn.cursor()

    cur.execute("SELECT id, balance FROM accounts ORDER BY id")
    out("accounts", rows_text(cur.fetchall()))
    # psycopg2 binds parameters on the client: this is a simple Query.
    out("params", one(cur, "SELECT count(*) FROM transactions WHERE amount > %s", (0,)))
    try:
        cur.execute("SELECT * FROM pg_stats")
        out("refused", "no error")
    except psycopg2.Error as e:
        out("refused", e.pgcode)
    # psycopg2 opened a transaction block; the error aborted it, as
    # PostgreSQL's would, until the client rolls back.
    try:
        cur.execute("SELECT 1")
        out("in aborted transaction", "ok")
    except psycopg2.Error as e:
        out("in aborted transaction", e.pgcode)
    conn.rollback()
    out("after refusal", one(cur, "SELECT count(*) FROM accounts"))
    out("version", one(cur, "SELECT version()"))
    out("search_path", one(cur, "SHOW search_path"))
    out("server_version_num", one(cur, "SELECT current_setting('server_version_num')"))
    cur.execute(RELATIONS)
    out("relations", ", ".join(f"{n}.{r} {k}" for n, r, k in cur.fetchall()))

    # psycopg2-specific.
    out("connection.server_version", conn.server_version)
    out("server_encoding", conn.get_parameter_status("server_encoding"))
    out("connection.encoding", conn.encoding)
    cur.execute("PREPARE big(numeric) AS SELECT count(*) FROM transactions WHERE amount > $1")
    out("PREPARE/EXECUTE", one(cur, "EXECUTE big(%s)", (0,)))
    cur.execute("DEALLOCATE big")
    step(conn, "pgadmin database", lambda: [r[1:] for r in fetch(cur, PGADMIN_DB)])
    step(conn, "pgadmin role", lambda: [r[1:] for r in fetch(cur, PGADMIN_ROLE)])
    step(conn, "pgadmin recovery", lambda: fetch(cur, PGADMIN_RECOVERY))
    conn.rollback()
    conn.autocommit = True
    try:
        cur.execute("SELECT * FROM pg_stats")
    except psycopg2.Error as e:
        out("refused (autocommit)", e.pgcode)
    out("after refusal (autocommit)", one(cur, "SELECT count(*) FROM accounts"))
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
