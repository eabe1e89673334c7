// Package rewrite turns a client's SQL into SQL that can only see what the
// caller's grants allow. It is a pure function of (statements, catalog,
// session, grants): no network, no globals, no clock. The proxy parses,
// calls Rewrite (or RewriteSQL), forwards Result.SQL and audits Result.
//
// # What it must never do
//
//   - Pass through what it does not understand. Statements and expression
//     node kinds are allow-listed; anything else is a typed 0A000 *Error.
//     A refusal carries SQLSTATE 42501 (denied), 0A000 (unsupported), 42P01
//     (unknown relation) or 42601 (syntax). Panics are bugs and surface as
//     XX000, never as a pass-through.
//   - Mutate a tree it was given. Statements may be cached and shared;
//     Rewrite works on a copy (RewriteSQL owns its private parse).
//   - Build SQL from strings. Filters, masks and literals are built as parse
//     tree nodes and deparsed, so quoting is libpg_query's; its deparser
//     writes a few names verbatim, so every deparse must parse back to the
//     tree it came from, else 0A000 (parse.go). Injected functions and
//     operators are schema-qualified (pg_catalog, mandate) so a user's
//     search_path cannot redirect them. (Splicing, below, places
//     deparsed derived tables into the user's own text; the only text it
//     writes itself is identifiers quoted per libpg_query's keyword list.)
//   - Let user SQL reach schema mandate, run SQL given as text (query_to_xml,
//     dblink, ts_stat, …), touch files or large objects, switch role, or read
//     side doors (42501): statistics (pg_stats, pg_statistic, pg_stat_*,
//     pg_stat_activity included), statements as rewritten, which show the
//     injected filters and masks (pg_prepared_statements, pg_cursors and
//     their functions), other sessions' locks (pg_locks), sequences' current
//     values (pg_sequences, pg_sequence_last_value: the policy store's
//     sequences count every user's consent changes). Ordinary catalogs
//     (pg_class, pg_attribute, …) stay readable so psql's \d works, but
//     pg_class is read through a derived table in which every relation has
//     the planner statistics of one never vacuumed or analyzed (reltuples
//     -1, relpages and relallvisible 0): they would tell a protected
//     table's row count. Its system columns are then refused (0A000).
//   - Run a user-defined operator. Its function runs with the upstream
//     role's rights and could read any relation unfiltered, so an operator
//     (infix, prefix, and those PostgreSQL finds by name for IN, BETWEEN,
//     IS DISTINCT FROM, NULLIF, CASE x WHEN, ANY/ALL and ORDER BY … USING)
//     must resolve to schema pg_catalog, else 42501. Resolution follows
//     PostgreSQL over the catalog's operators and the function path: with
//     both operand types inferred (columns, casts, typed constants, calls
//     and operators whose candidates agree on a result; an untyped literal,
//     or a parameter of no declared type used once, takes the other side's
//     type, and two of them are text), the first exact match on the path
//     wins; otherwise every operator of that name on the path that is not
//     hidden by one of the same operand types earlier on the path, and
//     that the known operand types reach by implicit coercion, is a
//     candidate (of those, the ones with the most exact matches; coerce.go),
//     and each must be built in. OPERATOR(schema.op) names its schema. A
//     name no pg_catalog operator has is refused. So where an extension's
//     operators share built-in names on the path (citext's =), comparisons
//     of types the rewriter cannot infer are refused; an operator vetted by
//     the deployment may be allow-listed as "schema.op" in Options.Functions
//     (never in schema mandate).
//   - Let a client LISTEN to, UNLISTEN or NOTIFY the policy store's channels
//     (names starting with "mandate", any case, after identifier folding):
//     they carry other users' consent and delegation changes, and a forged
//     notification reaches every replica (42501). UNLISTEN * stays allowed;
//     pg_notify needs its channel as a string constant outside them.
//
// # Reads
//
// Every FROM reference to a protected relation (after PostgreSQL's name
// resolution: CTE names first, then the search path with pg_temp and
// pg_catalog implied) becomes
//
//	(SELECT <columns in table order, masked> FROM schema.table _mN
//	 WHERE <select filter>) AS <original alias or table name>
//
// so joins, subqueries, CTEs, set operations, LATERAL, window functions,
// TABLE t and t.* keep working unchanged, and masks apply before any WHERE,
// JOIN, GROUP BY or aggregate sees the column.
//
// A SELECT that reads one protected table and nothing else is written
// inline instead (inline.go): "SELECT a FROM t WHERE p" becomes "SELECT
// <a masked> AS a FROM schema.t WHERE <filter> AND (p)", with every masked
// column reference replaced by its mask and * expanded. It is the plan
// PostgreSQL reaches by pulling the derived table up, without the planning
// time the pull-up costs each simple-protocol statement. Anything the
// inline form could get wrong (a fence, subqueries, column aliases,
// whole-row references, ORDER BY a bare masked name, …) keeps the derived
// table.
//
// A derived table's whole row is an anonymous record, so a whole-row
// reference to a protected relation (SELECT t, row_to_json(t), pg_typeof(t),
// f(t.*)) becomes ROW(t.*)::schema.table: the table's own row type, masked
// values included, under the reference's output name. On the nullable side
// of an outer join it is CASE WHEN t.* IS DISTINCT FROM NULL THEN … END, so a
// null-extended row stays NULL while a visible row whose fields are all NULL
// stays a row (IS DISTINCT FROM tests the value, not its fields). Where the
// rewriter cannot be sure a bare name is a whole-row reference (a FROM item
// whose columns it does not know, e.g. a subquery or function, might have a
// column of that name) or t.* is not a function argument, the reference is
// left alone and reads as a record: a type difference, never a leak.
//
// System columns (ctid, tableoid, xmin, xmax, cmin, cmax) of a protected
// relation are refused (0A000): the derived table has none, and passing them
// through would change SELECT * expansion.
//
// # Attribute notation
//
// PostgreSQL reads x.f, when FROM item x has no column f, as the function
// call f(x) on x's whole row, and (e).f, when e's type has no field f, as
// f(e). Such a call would run around the function allow-list and the fence
// rule, and in the inline form on the table's raw row, masked columns
// included. So x.f and (x).f where x has no column f are refused as
// PostgreSQL refuses an unknown column (42703; write f(x) to call f). The
// rewriter knows the columns of catalog relations and, naming them as
// PostgreSQL does, of subqueries, CTEs, VALUES, joins and functions with a
// column definition list (columns.go). Where it does not (a function in
// FROM, a subquery column it cannot name, the fields of a value of unknown
// type), f is refused when a function of that name exists in the catalog
// or on the allow-list, and passes otherwise: without a function PostgreSQL
// can only read a column or field, or fail (attribute.go).
//
// EXPLAIN of a statement that reads or writes a protected relation is
// refused (42501), with or without ANALYZE: a plan shows the injected
// filters' constants (ids, consent lists), mask key names, and row counts
// of rows the caller may not see. EXPLAIN EXECUTE is refused too, as the
// prepared statement's relations are not known here. EXPLAIN of statements
// over unprotected relations works (EXPLAIN VERBOSE stays refused, 0A000).
//
// # Splicing
//
// Deparsing a whole rewritten statement costs more than parsing it, so when
// every change has an exact text span the output is the statement's own
// text (comments and spelling kept, trailing comments dropped) with only
// those spans replaced: [ONLY] name of each protected FROM item by its
// deparsed derived table (the user's alias kept, or AS <name as written>),
// the schema inserted before each unqualified relation, whole-row
// references replaced as above. Spans come from libpg_query's scanner and
// must spell the names the parse tree holds and follow FROM, JOIN, USING,
// a comma or a parenthesis. Anything else — writes to protected relations,
// schema-qualified column references to wrapped relations, TABLESAMPLE,
// COPY t TO, TABLE t, a replaced written schema — falls back to deparsing
// the whole statement. Both paths are compared on every golden case.
// FOR UPDATE/SHARE reaching a protected relation needs update permission and
// locks only rows passing both the select and the update filter. COPY t TO
// STDOUT becomes COPY (SELECT … FROM ONLY t) TO STDOUT. Reads of protected
// relations inside any write are wrapped the same way.
//
// # Writes
//
// A protected relation written by INSERT, UPDATE, DELETE (also inside a
// WITH or PREPARE) or COPY FROM stays the statement's target,
// schema-qualified, and needs the grant's insert, update or delete action
// (else 42501). Like PostgreSQL's row-level security:
//
//   - UPDATE, DELETE and ON CONFLICT DO UPDATE reach only rows passing the
//     action's filter, ANDed to their WHERE over the target's name or
//     alias. When the statement reads the target's columns (WHERE, SET
//     values, ON CONFLICT, RETURNING) it also needs select permission and
//     the select filter is added, so a WHERE cannot probe rows the caller
//     cannot see. The user's condition stays a plain conjunct (its index
//     conditions keep driving the scan) unless the fence rule finds it
//     dangerous; then it runs as CASE WHEN <filter> THEN <condition> ELSE
//     false END, never on a row the filter excludes. A conflicting row the
//     caller may not update is left alone (the DO UPDATE does nothing).
//   - Every new row must pass the insert filter (INSERT, COPY FROM) or the
//     update filter (UPDATE, DO UPDATE). The check is
//     mandate.deny_unless(<filter over the new row>, 'schema.t'), created
//     by policy/store/migrations/0003_write_checks.sql: it raises 42501
//     ("new row violates mandate write policy for relation …") unless its
//     argument is true (NULL raises too), so the statement fails and
//     writes nothing, however many rows were fine.
//     INSERT … VALUES/SELECT becomes INSERT INTO schema.t (cols) SELECT
//     _mandate_new.* FROM (SELECT <values cast to the columns' types>
//     FROM (<original source>) AS _mandate_src(cols) OFFSET 0) AS
//     _mandate_new(cols) WHERE mandate.deny_unless(…); a plain VALUES list
//     gets the casts in its cells. Without a column list the table's
//     columns are named. UPDATE and DO UPDATE assign the columns the filter
//     reads through one sub-select, SET (a, b) = (SELECT … FROM (SELECT
//     CAST(<new a> AS …), … OFFSET 0) AS _mandate_new(a, b) WHERE
//     mandate.deny_unless(<filter over the new a, b and the row's other
//     columns>, …)), which runs only for rows that passed the WHERE; other
//     assignments are untouched (the old row passed the filter). OFFSET 0
//     makes each new value a single evaluation, so a volatile value or a
//     sub-query cannot differ between the check and the store. Values are
//     cast to the column's type without a length or precision modifier
//     where dropping it loses nothing (varchar, numeric, time types), so
//     the assignment still rejects an over-long string (22001) instead of
//     truncating it, and the check applies the modifier: it sees the value
//     that is stored. COPY FROM gets WHERE mandate.deny_unless(…) (under
//     CASE WHEN <the user's WHERE>), which PostgreSQL evaluates per row
//     after input conversion and column defaults.
//   - RETURNING is masked like a read: a masked column becomes its mask
//     expression under its own name, and *, or t.*, of the target expands
//     to its columns, masked. Reading a masked column of the target
//     anywhere else (WHERE, SET values, ON CONFLICT) is refused (42501): it
//     would see raw values; so is a whole-row reference to it.
//
// Refused with 0A000, because the new value cannot be known to the
// rewriter or the check cannot be placed: a checked column (one the write
// filter reads) left to its default (missing from the INSERT column list,
// DEFAULT VALUES, DEFAULT in VALUES or SET), assigned by SET (…) = (SELECT
// …) or in part (c[1], c.f); DEFAULT in only some VALUES rows; WHERE
// CURRENT OF; MERGE into a protected relation; writes through a view or
// other non-table relation that is protected. Writes to an unprotected view
// or parent over protected relations stay refused (42501). Limits, as with
// row-level security: a unique violation or ON CONFLICT can reveal that a
// key exists in a row the caller cannot see; BEFORE triggers and generated
// columns run after the check, so filters should not read columns they
// compute; a RETURNING row of an INSERT is the caller's own data, not
// checked against the select filter; for INSERT … SELECT * (width not
// known without the catalog) extra source columns are ignored rather than
// refused.
//
// # Every relation is schema-qualified
//
// The rewriter resolves names with the search_path the proxy tracks, and the
// proxy can get it wrong (a statement pipelined behind a SET that then
// fails is decided as if the SET had succeeded). So the output names the schema of every relation it
// resolved, protected or not, catalogs included (pg_class →
// pg_catalog.pg_class), in FROM, write targets and COPY: the upstream then
// reads exactly the relation that was checked, and a path mismatch can at
// worst pick another table (with its own grants), never skip a wrapper. The
// session's temp schema is written pg_temp, which PostgreSQL resolves to the
// session's own pg_temp_N. Only CTE references stay unqualified. A statement
// already written that way is forwarded byte for byte.
//
// Functions and operators are written qualified where another schema has
// one of the same name (qualify.go): pg_catalog.max(x), a
// OPERATOR(pg_catalog.=) b, BETWEEN as its two comparisons. The overload
// model (coerce.go) decides which one PostgreSQL picks; written so, an
// overload the model missed, or one created since the catalog was read,
// cannot be the pick. Copies the rewriter places beside a fenced filter
// always run pg_catalog's operators (pushdown.go).
//
// # Session state
//
// Ways of changing search_path the proxy cannot follow are refused (0A000):
// set_config() under any schema, SET search_path FROM CURRENT, non-name
// values. StmtInfo.Effect (or Statements.Effects, for statements forwarded
// without Rewrite) reports what the proxy must track, from the same parse:
// SET/RESET of search_path with the new list and LOCAL; RESET ALL and
// DISCARD ALL, which reset it and the proxy's own mandate.* settings;
// transaction control (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO, COMMIT/END,
// ROLLBACK/ABORT, PREPARE TRANSACTION); and whether the statement may
// change the catalog (DDL, DO, CALL, SELECT INTO, DISCARD). The proxy
// decides each statement as if the ones forwarded before it succeed (a
// statement after a SET in the same query is decided under the new path),
// keeps what ran once the upstream's answers say so, and follows
// PostgreSQL's rules: a SET inside a transaction block is undone by ROLLBACK
// and by ROLLBACK TO a savepoint taken before it; SET LOCAL ends with the
// transaction; a COMMIT of a failed transaction rolls back (its command tag
// says ROLLBACK); the statements of one simple Query, or of the extended
// messages up to a Sync, outside a block form one implicit transaction that
// an error rolls back; a reset returns to the value the session started
// with. Its own settings (MandateSetting: the identity, the purpose) follow
// the same rules. It reloads the Catalog after catalog changes have
// committed.
//
// # The fence rule (planner side channels)
//
// A plain derived table is pulled up into the outer query, and the planner
// may then evaluate a user's qual before the filter: a leaky function sees
// hidden rows, and a data-dependent error (division by zero, a failing cast)
// reveals them. OFFSET 0 stops pull-up and qual push-down, but also stops an
// outer "WHERE id = 500" from using the index. So the derived tables of a
// statement get OFFSET 0 only when the statement contains a dangerous
// expression:
//
//   - a function, operator or cast that is not leakproof (per the catalog's
//     proleakproof; operand types are inferred from columns and constants;
//     unknown types count as leaky; casts of row data count as leaky) over
//     any column, of any relation, in a per-row qual (WHERE, JOIN ON,
//     HAVING, a write's WHERE, MERGE's condition) or in what PostgreSQL may
//     pull up into one (the output list of a derived table or CTE, a VALUES
//     list): the planner moves quals between relations (equivalence
//     classes, pull-up, parameterized scans) in more ways than the walk can
//     follow, so it does not ask whose column it is;
//   - such an expression in another qual context (LIMIT, function
//     arguments in FROM, the target list of a sublink) whose arguments may
//     carry data of a protected relation (a column of one, or of a
//     subquery/CTE/join that reads one, or a column it cannot resolve);
//   - a volatile leaky function in a qual context, even without arguments
//     (its call count would reveal how many hidden rows reach it);
//   - a subquery that reads protected data feeding a leaky qual;
//   - an expression that reads no column yet is computed at run time, not
//     when PostgreSQL parses or plans the statement, in a qual evaluated per
//     row, when it or an expression around it may fail: a cast to a domain
//     (its CHECK runs per row) or through a stable input function, XMLPARSE
//     and the other XML constructors, a non-immutable function or operator
//     of constants (to_date('x', 'YYYY'), timestamptz + interval),
//     CURRENT_DATE and the like under a leaky expression, a sublink that
//     may fail (anything in it that may, a scalar sublink that may return
//     a second row, an ARRAY sublink). Its error would tell that some
//     row, perhaps a hidden one, reached it ("t.id <> 17 OR
//     (-1)::information_schema.cardinal_number IS NULL"). Only what
//     PostgreSQL provably folds is exempt: literals,
//     casts of untyped literals to built-in base types, casts between
//     built-in types whose casts are all immutable, immutable functions of
//     those (fold.go). LIMIT, OFFSET and functions in FROM run once per
//     scan and are exempt; a parameter counts as a constant (true under a
//     custom plan, not under a generic one: a known limit).
//
// Aggregates and window functions run above every scan, so their arguments
// are exempt, as are ORDER BY, GROUP BY and the top-level target list.
// An ARRAY[…] or ROW(…) constructor counts as leaky: its per-row cost is
// its size, which the planner does not charge for, so a qual built from
// one runs before the filter and its run time can tell a hidden row's
// value (and arrays of arrays fail, 2202E, when their dimensions differ).
// For the same reason more than 16 steps (walker.rowSteps: comparisons and
// uncharged steps) in the per-row quals of a statement fence it (and a
// fenced derived table gets copies of at most 4 conjuncts), and so do a
// string constant longer than 256 bytes there (walker.longConstant), any
// CASE or COALESCE
// (walker.gate), any function call, and a comparison whose operands are not
// plain (walker.plainOperand): unfenced per-row quals are, in effect, an
// allow-list of the shapes index scans need.
// Otherwise no fence: "WHERE id = 500" (int4eq is leakproof) keeps its index
// scan. The rule is per statement and conservative: numeric comparisons are
// not leakproof in PostgreSQL, so "WHERE balance > 100" is fenced.
//
// A fence stops every outer qual, the leakproof ones too, so a fenced
// derived table gets a copy of each WHERE conjunct of its level that
// compares one of its unmasked columns with constants through a leakproof
// operator (pushdown.go): "WHERE id = 500 AND note LIKE 'x%'" still probes
// the index on id, as a security-barrier view lets PostgreSQL do.
// Options.AlwaysFence (mandate serve --fence always) fences every
// statement that reads a protected relation; Options.StrictFence (--fence
// strict) copies nothing into the fence either.
//
// # Masks keep types
//
// A masked column keeps its name and is cast back to its declared type
// (format_type of the catalog column): null → NULL::t; redact → '***'::t for
// text types, NULL::t otherwise; partial → repeat('*', length(c) - k) ||
// right(c, k); email → '***@' || split_part(c, '@', 2); hash →
// mandate.mask_hash(c::text, 'key') for text, mask_hash_int2/4/8 returning
// the column's own integer type (so hashed keys still join), mask_hash_uuid
// for uuid; round/bucket → round|floor(c::numeric / step) * step, and
// round(c::numeric, -k) when step is 10^k (cheaper to plan); truncate →
// date_trunc(unit, c) (of a timestamptz, in UTC, whatever the session's
// TimeZone). A mask that cannot keep the type (partial on an integer, an
// invalid step) falls back to NULL::t and says so in
// Result.Statements[].Relations[].Masks[].Note. The policy store migration
// policy/store/migrations/0002_masks.sql creates the
// helpers and mandate.mask_keys; keys are referred to by name only.
//
// # Prepared statements and cursors
//
// PREPARE, DECLARE … WITH HOLD and the extended protocol bake the grants of
// the moment into the server-side object. The proxy must decide again at
// EXECUTE and FETCH/MOVE when the scope or the grants version changed, so
// StmtInfo names the object: Kind prepare, execute or deallocate with Name
// the prepared statement; declare, fetch (MOVE too) or close with Name the
// cursor; Name as PostgreSQL folds it. DEALLOCATE ALL and CLOSE ALL (and
// UNLISTEN *) report Name "" and All set.
//
// All cgo (libpg_query) sits in parse.go.
package rewrite
