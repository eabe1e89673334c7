// Package store keeps mandate's live policy state — delegations, consents
// and agent registrations — in PostgreSQL, and gives the proxy an always
// readable, never blocking, fail-closed view of it.
//
// # Two sides
//
// Store is the write side, driven by `mandate delegate|consent|agent`: plain
// SQL over a DB (a *pgx.Conn, a pool or a transaction). State is the read
// side for the proxy's hot path: an immutable Snapshot behind an
// atomic.Pointer, replaced whole when the database changes, so a statement
// reads one consistent view with no locks. Migrate creates and upgrades the
// schema, at `mandate migrate` and at start-up.
//
// # Tables (schema mandate; migrations/NNNN_*.sql, embedded)
//
//	schema_migrations(version, applied_at)   applied migrations
//	state(generation)                         one row, +1 per change
//	delegations(id uuid, grantor, delegate, tables[], actions[], columns[],
//	            row_constraint jsonb {table: Cedar condition}, purpose,
//	            not_before, expires_at, revoked_at, created_at)
//	consents(subject, purpose, granted, changed_at)  PK (subject, purpose)
//	consent_history(seq, subject, purpose, granted, changed_at)
//	agents(id, owner ('*' = any user), tables[], actions[], masked[],
//	       disabled_at, created_at)
//
// Constraints, not Go code, define valid state, so hand-written SQL is held
// to the same rules as the CLI: actions ⊆ {select, insert, update, delete},
// at least one table, expires_at > not_before, row constraints only for
// delegated tables. Delegations and agents are immutable except for their
// end (revoked_at, disabled_at), which is set once: a delegation id in the
// audit log always names one fixed scope. Each migration runs in its own
// transaction under pg_advisory_xact_lock, so replicas may start together.
//
// # Notification contract
//
// Triggers on the three tables bump state.generation and, in the same
// transaction, pg_notify(Channel, payload) with the JSON
//
//	{"kind": "delegation"|"consent"|"agent", "op": "insert"|"update"|"delete"|"truncate",
//	 "id": …, "subject": …, "generation": N, "at": "<change time, RFC 3339 UTC>"}
//
// NOTIFY is transactional: listeners hear a change only once it has
// committed, and never one that rolled back. "at" is clock_timestamp() at
// the change, the closest the database offers to the commit time; it feeds
// Config.OnNotify (notification lag). Watchers treat a notification as a hint
// only: they re-read the tables, in one REPEATABLE READ transaction, when its
// generation is newer than theirs. Every RefreshInterval they read the
// generation alone and re-read the tables if it moved, which catches a
// notification lost to a dropped connection; a reconnect always re-reads.
//
// # Fail closed
//
// State records when it last confirmed its snapshot current (the start of
// the last successful read). State.Check refuses — an *Error with SQLSTATE
// 57P03, "policy store unreachable; cached state is older than 30s" — once
// that is older than Config.MaxStaleness, and before the first read. A proxy
// that cannot reach the store therefore stops answering rather than honour
// a delegation that may have been revoked meanwhile.
//
// Expiry needs no notification: a snapshot holds each delegation's window
// and callers test Delegation.Active(now) at every statement (the
// Snapshot.Delegation lookup does). Revocation and agent disabling take
// effect by removal from the next snapshot, whatever the two clocks say.
//
// The package never decides access: it returns records; policy decides.
package store
