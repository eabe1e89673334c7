// Package policy decides, for a statement's scope, what each relation it
// touches may yield: per action a row predicate, per column a mask, as the
// grant vocabulary (package grant). It knows Cedar, identities and live
// policy state; it never sees SQL text, parse trees or sockets.
//
// # Sources
//
// An Engine serves an immutable Snapshot loaded from four files (Sources):
// a directory of *.cedar policies, a Cedar schema (human format), a Cedar
// entities JSON file and a masks YAML file. Every policy must carry
// @id("..."): the id names it in denials, audit records and tests. Policies
// are validated against the schema, entities against the schema, masked
// columns against the schema's tables; every error names file and line.
// Reload builds a new snapshot and swaps it in atomically, or keeps the old
// one and returns the error. All use of cedar-go's x/exp packages (outside
// semver) is confined to cedar.go.
//
// # The model
//
//   - Principals are entities of the schema types named User and Agent;
//     groups and roles are their parents (`principal in Group::"support"`).
//   - Actions are Action::"select", "insert", "update", "delete" and
//     "unmask".
//   - The resource is one row. Each protected table is an entity type
//     annotated @table("schema.table"); its attributes are the columns, so
//     a condition reads `resource.customer_id == principal.customer_id`.
//     Nullable columns are optional attributes; `resource has col` means
//     `col IS NOT NULL`. A row is never a named entity, so `resource ==
//     E` or `resource in E` scopes never match one.
//   - The context, the same for every party of a scope: subject (User),
//     purpose, consents (the subject's purposes), consenting (see below),
//     delegation {id, grantor, delegate, tables, actions, columns, purpose,
//     expires_at?} and agent {id, tables, actions, masked} when the scope
//     has them, client_addr, auth_method, scopes, claims, and for unmask
//     only, column. The clock is not in the context: time windows live in
//     delegation and agent records, where the engine checks them, which
//     keeps grants cacheable.
//
// # Row filters
//
// For each action, each policy that can apply is partially evaluated with
// principal, action and context known and the resource unknown. A residual
// permit is a condition over the row; the filter is the OR of the permit
// residuals AND NOT each forbid residual. Residuals translate to grant
// expressions: comparisons between columns and constants (decimal and
// datetime constants carry the SQL type to cast to), set membership
// (`[..].contains(resource.c)`, and `resource.c in [..]` in hand-written
// row constraints), `has`, `is`, and/or/not and if-then-else.
//
// Consent reaches other subjects' rows through context.consenting: for each
// User attribute that is a primitive or a set of primitives, the union of
// its values over the subjects a ConsentIndex says consent to the
// statement's purpose. `context.consenting.account_ids.contains(
// resource.account_id)` becomes `account_id IN (...)`; a withdrawn consent
// drops the subject's values from the next statement's filter.
//
// # Intersection (SPEC §2)
//
// The subject is evaluated with principal = subject, then each actor with
// principal = that actor and the same context. An action is allowed only if
// every party is allowed; its filter is the AND of all parties' filters; a
// column is masked if any party sees it masked. On top of Cedar, and
// whatever the policies say, the engine enforces:
//   - every delegate in the chain needs the scope's delegation, naming it as
//     delegate; the delegation must be active at the statement's time
//     (Delegation.Active), granted by the subject, and for the statement's
//     purpose if it names one;
//   - every agent needs the scope's agent registration, active for the one it
//     acts for (the previous link of the chain);
//   - the delegation's and the registration's tables and actions bound what
//     is allowed; the delegation's row constraint (a Cedar condition over
//     `resource`, evaluated for the delegate like a policy condition) is
//     ANDed into every filter;
//   - a column outside the delegation's Columns ("schema.table.column"), or
//     in the agent's Masked list, is masked with its declared mask, or NULL
//     when it has none.
//
// An actor without a valid delegation or registration makes the scope grant
// nothing.
//
// # Masks
//
// Data teams declare masks per column or per tag in the masks file. A
// declared mask applies unless every party is permitted Action::"unmask" on
// the table, unconditionally, with context.column naming the column (a mask
// cannot vary by row, so an unmask residual that depends on the row keeps
// the mask). Columns without a declared mask are raw, unless a delegation or
// agent scope masks them.
//
// # Failing closed
//
//   - A relation with no permitting policy is denied, with a reason naming
//     the table; a relation the schema does not declare is denied unless
//     Options.AllowUnprotected.
//   - A residual that cannot be translated, or a policy that errors, fails
//     closed: a permit adds no rows, a forbid forbids every row; the reason
//     records which policy failed and why.
//   - SQL's NULL stands for Cedar's missing attribute: a comparison with
//     NULL is not true, so rows a Cedar error would deny are filtered out.
//   - Failures are *Error values with a SQLSTATE: 42501 for denials (Denied),
//     57P03 when live state is unavailable, F0000 for invalid sources.
//
// # Caching
//
// GrantSet caches each relation's grant by snapshot version, live-state
// version, a fingerprint of the whole scope and the relation's catalog
// shape; an entry is served only inside the time window in which the
// scope's delegation and agent checks keep their outcome, so expiry takes
// effect on the next statement without any notification.
package policy
