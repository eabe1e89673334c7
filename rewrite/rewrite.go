package rewrite

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/mandate-proxy/mandate/grant"
)

// GrantSource returns the caller's grants for the protected relations a
// statement touches (schema-qualified, sorted, distinct). Rewrite asks once
// per call and only when a protected relation is referenced.
type GrantSource interface {
	Grants(relations []string) (*grant.Set, error)
}

// GrantFunc adapts a function to GrantSource.
type GrantFunc func(relations []string) (*grant.Set, error)

// Grants calls f.
func (f GrantFunc) Grants(relations []string) (*grant.Set, error) { return f(relations) }

// Options configure what is protected and which functions may be called.
// The zero value is the default policy.
type Options struct {
	// Protected reports whether a relation (schema-qualified) is protected.
	// Nil protects every relation outside the system schemas except sequences.
	Protected func(qualifiedName string) bool
	// Functions is the function allow-list (see DefaultFunctions); nil means
	// DefaultFunctions(). User-defined functions are listed as
	// "schema.name"; so are vetted operators outside pg_catalog
	// ("public.=="), which are otherwise refused (doc.go).
	Functions map[string]bool
	// Derived, when set, keeps the text of derived tables across calls: a
	// derived table is a function of its table's columns, the grants, its
	// inner alias and whether it is locked or fenced, and deparsing it is
	// most of a cold rewrite's cost. Safe for concurrent use.
	Derived *DerivedCache
	// Channels are the notification channels LISTEN, NOTIFY and pg_notify
	// may name: exact names, or prefixes ending in "*". None when empty:
	// no policy governs what a notification carries or who may send it.
	// mandate's own channels are refused whatever this says.
	Channels []string
	// AlwaysFence fences every statement that reads a protected relation,
	// as if each held a leaky qual (doc.go, "The fence rule"): derived
	// tables get OFFSET 0, filters are never inlined, and a write's WHERE
	// runs under CASE behind the filter. No user expression then runs
	// ahead of a filter, whatever the leakproofness analysis would say,
	// at the cost of index use through the user's own quals (README,
	// "Benchmarks", measures it).
	AlwaysFence bool
	// StrictFence, with AlwaysFence, copies no conjunct into a fenced
	// derived table either (pushdown.go), so no user expression is
	// evaluated on a row its filter hides, a leakproof one included: not
	// as an index condition, not as a test whose outcome decides whether
	// the filter runs (docs/security.md, "Timing"). Only the filter's own
	// quals then choose the index.
	StrictFence bool

	// deparseAll turns splicing off, so tests can compare both paths.
	deparseAll bool
	// noInline keeps every protected reference a derived table (inline.go).
	noInline bool
	// noBetweens leaves BETWEEN as written (qualify.go).
	noBetweens bool
}

// Kind is what a statement does, for the proxy's routing and audit.
type Kind string

// Statement kinds.
const (
	KindSelect      Kind = "select"
	KindInsert      Kind = "insert"
	KindUpdate      Kind = "update"
	KindDelete      Kind = "delete"
	KindMerge       Kind = "merge"
	KindCopy        Kind = "copy"
	KindExplain     Kind = "explain"
	KindSet         Kind = "set"
	KindShow        Kind = "show"
	KindTransaction Kind = "transaction"
	KindDeclare     Kind = "declare"
	KindFetch       Kind = "fetch"
	KindClose       Kind = "close"
	KindPrepare     Kind = "prepare"
	KindExecute     Kind = "execute"
	KindDeallocate  Kind = "deallocate"
	KindListen      Kind = "listen"
	KindNotify      Kind = "notify"
	KindUnlisten    Kind = "unlisten"
	KindDiscard     Kind = "discard"
)

// Result is the rewritten SQL and what was applied, for audit.
type Result struct {
	// SQL is every statement, rewritten or verbatim, joined by "; ".
	SQL        string
	Statements []StmtInfo
	// GrantsVersion is the grant.Set version used (0 when none was needed);
	// a cache keyed by (SQL, GrantsVersion) never serves a stale decision.
	GrantsVersion uint64
	// Template, when set, is this rewrite for every statement with the
	// same TemplateKey (template.go), under the same grants version, and
	// Literals are this statement's (for Template.Prepare).
	Template *Template
	Literals Literals
}

// StmtInfo describes one statement.
type StmtInfo struct {
	Kind Kind
	// SQL is the statement as forwarded: the original text when nothing was
	// rewritten, the deparsed rewrite otherwise.
	SQL       string
	Rewritten bool
	// Name is the object a statement names, as PostgreSQL folds it: the
	// prepared statement of PREPARE, EXECUTE and DEALLOCATE (KindPrepare,
	// KindExecute, KindDeallocate); the cursor of DECLARE, FETCH, MOVE and
	// CLOSE (KindDeclare, KindFetch — MOVE too —, KindClose); the channel
	// of LISTEN, UNLISTEN and NOTIFY. A prepared statement or WITH HOLD
	// cursor keeps the grants of the moment it was created: the proxy must
	// decide again before EXECUTE or FETCH/MOVE when the scope or the grants
	// version changed. Name is "" exactly when All is set.
	Name string
	// All marks DEALLOCATE ALL, CLOSE ALL, UNLISTEN * and DISCARD ALL,
	// which name every object of their kind the session holds (Name is "").
	All bool
	// Hold marks DECLARE … WITH HOLD: the cursor outlives its transaction.
	Hold      bool
	Relations []RelationUse
	// Fenced is true when the derived tables carry OFFSET 0 (see doc.go).
	Fenced bool
	// Effect is what the statement does to session state and the catalog.
	Effect Effect
}

// RelationUse is one relation a statement touches and how.
type RelationUse struct {
	Name      string
	Action    grant.Action
	Protected bool
	// Filters are the rendered row filters applied, one per reference: for
	// a read, the rows it sees; for a write, the rows it may reach (the
	// action's filter, AND the select filter when the statement reads the
	// target's columns).
	Filters []string
	// Checks are the rendered write checks every new row must pass (insert
	// or update filter), raised as SQLSTATE 42501 by mandate.deny_unless.
	Checks   []string
	Masks    []MaskUse
	Policies []string
}

// MaskUse is one mask applied to a column.
type MaskUse struct {
	Column string
	Kind   grant.MaskKind
	// Note explains a fallback, e.g. a text mask on a numeric column
	// becoming NULL.
	Note string
}

// Rewrite classifies every statement, resolves the relations it reads,
// asks grants for the protected ones and replaces each protected reference
// by a filtered, masked derived table (or, for a SELECT over one protected
// table alone, writes the filter and masks into it: inline.go). It never
// mutates stmts or cat, and it refuses (typed *Error) whatever it cannot
// enforce.
func Rewrite(stmts *Statements, cat *Catalog, sess Session, grants GrantSource, opts *Options) (Result, error) {
	return rewrite(stmts, cat, sess, grants, opts, false)
}

// RewriteSQL parses and rewrites sql in one step. The parse tree is private
// to the call, so it is rewritten in place with a single walk and no copy:
// the cheapest path for a statement the proxy has not cached.
func RewriteSQL(sql string, cat *Catalog, sess Session, grants GrantSource, opts *Options) (Result, error) {
	stmts, err := Parse(sql)
	if err != nil {
		return Result{}, err
	}
	return rewrite(stmts, cat, sess, grants, opts, true)
}

func rewrite(stmts *Statements, cat *Catalog, sess Session, grants GrantSource, opts *Options, owned bool) (res Result, err error) {
	defer func() {
		// A panic is a rewriter bug; it must never turn into a pass-through.
		if p := recover(); p != nil {
			res, err = Result{}, &Error{Code: CodeInternal, Msg: fmt.Sprintf("rewrite: internal error: %v", p)}
		}
	}()
	if stmts == nil || cat == nil {
		return Result{}, &Error{Code: CodeInternal, Msg: "rewrite: nil statements or catalog"}
	}
	o := opts.withDefaults()
	lowerSQL := strings.ToLower(stmts.sql)
	n := stmts.Len()

	// Pass 1, read-only: classify and collect the protected relations.
	walkers := make([]*walker, n)
	need := map[string]bool{}
	effects := make([]Effect, n)
	for i, raw := range stmts.tree.Stmts {
		if effects[i], err = effectOf(raw.Stmt); err != nil {
			return Result{}, err
		}
		if effects[i].CopyIn && i < n-1 {
			// PostgreSQL would read the rows of the one and go on with the
			// rest; whether a Sync sent meanwhile counts then depends on
			// where a failing COPY stops, which the proxy cannot see.
			return Result{}, unsupported("COPY FROM STDIN must be the last statement of a query string")
		}
		w := newWalker(cat, sess, &o, lowerSQL, owned)
		if err := w.statement(raw.Stmt); err != nil {
			return Result{}, err
		}
		walkers[i] = w
		for _, s := range w.sites {
			need[s.table.QualifiedName()] = true
		}
		for _, t := range w.targets {
			need[t.table.QualifiedName()] = true
		}
	}

	var set *grant.Set
	if len(need) > 0 {
		if grants == nil {
			return Result{}, &Error{Code: CodeInternal, Msg: "rewrite: no grant source"}
		}
		names := make([]string, 0, len(need))
		for name := range need {
			names = append(names, name)
		}
		sort.Strings(names)
		if set, err = grants.Grants(names); err != nil {
			return Result{}, fmt.Errorf("rewrite: grants: %w", err)
		}
		if set != nil {
			res.GrantsVersion = set.Version
		}
	}

	// Pass 2: rewrite a private copy of each statement that needs it.
	texts := make([]string, 0, n)
	var toks []token
	scanned := false
	// A single statement whose decisions ignored its constants' values
	// may become a template (template.go); litPos are where its literals
	// landed in the output.
	var lits, litPos []int
	var deparsed *pgNode // the tree of a statement that was deparsed whole
	var deparseStmt func(*pgNode) (string, error)
	templated := n == 1 && !walkers[0].valueDependent && templateKinds[walkers[0].kind] && !o.deparseAll
	if templated {
		scanned = true
		if toks, err = scan(stmts.sql); err != nil {
			toks, templated = nil, false
		}
		start, end, ok := stmts.stmtRange(0)
		if templated = templated && ok; templated {
			lits, templated = literalTokens(toks, start, end)
		}
	}
	for i, raw := range stmts.tree.Stmts {
		w := walkers[i]
		info := StmtInfo{Kind: w.kind, Name: w.name, All: w.all, Hold: w.hold, Effect: effects[i]}
		// Forwarded verbatim only when there is nothing to wrap and every
		// relation is already written as the rewriter resolved it.
		if len(w.sites) == 0 && len(w.quals) == 0 && len(w.names)+len(w.betweens) == 0 && len(w.targets) == 0 {
			info.SQL = stmts.text(i)
			info.Relations = w.relationUses(nil)
			if templated {
				start, end, _ := stmts.stmtRange(i)
				litPos = verbatimLiterals(stmts.sql, toks, start, end, lits)
			}
		} else {
			stmt := raw.Stmt
			if !owned {
				// Never touch a tree the caller may share: rewrite a copy,
				// walked again so the sites point into the copy.
				stmt = proto.Clone(raw.Stmt).(*pgNode)
				w = newWalker(cat, sess, &o, lowerSQL, true)
				if err := w.statement(stmt); err != nil {
					return Result{}, err
				}
			}
			if !scanned && !o.deparseAll {
				scanned = true
				if toks, err = scan(stmts.sql); err != nil {
					toks = nil // no spans: deparse whole statements
				}
			}
			var edits []spliceEdit
			w.fenceMaskedReads(set)
			w.inline = w.inlineSite()
			pushes := w.pushes(set) // before expandBetweens changes what it reads
			spliceable := toks != nil && !o.deparseAll && w.inline == nil && !pushes && len(w.groupColumns(set)) == 0
			if spliceable {
				edits, spliceable = w.splicePlan(stmts.sql, toks)
			}
			applied, err := w.apply(set)
			if err != nil {
				return Result{}, err
			}
			expandBetweens(stmt, w.betweens)
			var sql string
			if spliceable {
				start, end, ok := stmts.stmtRange(i)
				if sql, litPos, err = splice(stmts.sql, toks, start, end, edits, o.Derived, res.GrantsVersion, w.fenced(), lits); err != nil || !ok {
					spliceable = false
				}
			}
			if !spliceable {
				litPos = nil // the deparser spells literals its own way
				deparseStmt = deparse
				if w.inline == nil && !pushes {
					// Derived tables as splice has them: their text
					// depends on nothing else of the statement.
					sites, grants, fenced := w.sites, res.GrantsVersion, w.fenced()
					deparseStmt = func(n *pgNode) (string, error) {
						return deparseAround(n, sites, o.Derived, grants, fenced)
					}
				}
				if sql, err = deparseStmt(stmt); err != nil {
					switch {
					case w.inline != nil:
						// Not written back faithfully: derived tables instead.
						o.noInline = true
						return rewriteAgain(stmts.sql, cat, sess, grants, o)
					case len(w.betweens) > 0:
						// The deparser sets no parentheses around an AND
						// under IS NULL, IS NOT DISTINCT FROM, IN or ANY
						// (red team round 52b): BETWEEN as written, then.
						o.noBetweens = true
						return rewriteAgain(stmts.sql, cat, sess, grants, o)
					}
					return Result{}, unsupported("statement cannot be rewritten: %v", err)
				}
				deparsed = stmt
			}
			info.SQL, info.Rewritten, info.Fenced = sql, true, w.fenced()
			info.Relations = w.relationUses(applied)
		}
		texts = append(texts, info.SQL)
		res.Statements = append(res.Statements, info)
	}
	res.SQL = strings.Join(texts, "; ")
	switch {
	case templated && litPos != nil:
		res.Template = newTemplate(res, stmts.sql, toks, lits, litPos)
	case templated && deparsed != nil:
		res.Template = deparsedTemplate(res, deparsed, deparseStmt, res.SQL, stmts.sql, toks, lits)
	}
	if res.Template != nil {
		res.Literals = literalsOf(stmts.sql, toks, lits)
	}
	return res, nil
}

// rewriteAgain rewrites sql again under o, which turns off what the first
// attempt could not deparse, from a fresh parse: that attempt changed its
// tree.
func rewriteAgain(sql string, cat *Catalog, sess Session, grants GrantSource, o Options) (Result, error) {
	stmts, err := Parse(sql)
	if err != nil {
		return Result{}, err
	}
	return rewrite(stmts, cat, sess, grants, &o, true)
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Functions == nil {
		out.Functions = DefaultFunctions()
	}
	return out
}

func (o *Options) protected(t *Table) bool {
	if o.Protected != nil {
		return o.Protected(t.QualifiedName())
	}
	return !isSystemSchema(t.Schema) && t.Kind != KindSequence
}

// relationUses merges the walker's references by (name, action) and attaches
// what was applied to protected reads and writes.
func (w *walker) relationUses(applied map[string]*RelationUse) []RelationUse {
	var out []RelationUse
	index := map[string]int{}
	for _, u := range w.uses {
		key := useKey(u.name, u.action)
		if _, ok := index[key]; ok {
			continue
		}
		index[key] = len(out)
		ru := RelationUse{Name: u.name, Action: u.action, Protected: u.protected}
		if a := applied[key]; a != nil {
			ru.Filters, ru.Checks, ru.Masks, ru.Policies = a.Filters, a.Checks, a.Masks, a.Policies
		}
		out = append(out, ru)
	}
	return out
}
