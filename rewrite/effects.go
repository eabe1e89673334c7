package rewrite

import (
	"strings"
	"unicode/utf8"
)

// Effect is what a statement does beyond its result: to the session state
// the proxy tracks (search_path, the transaction) or to the catalog. It is
// read from the parse the rewriter already has, so the proxy never parses a
// statement twice. The proxy keeps an effect once its statement has
// succeeded (see doc.go, "Session state").
type Effect struct {
	// SearchPath is set when the statement sets or resets search_path.
	SearchPath *SearchPathChange
	// Tx is the statement's transaction control, if any.
	Tx TxControl
	// Savepoint names the savepoint of TxSavepoint, TxRelease, TxRollbackTo.
	Savepoint string
	// Chain is COMMIT/ROLLBACK AND CHAIN: a new transaction starts at once.
	Chain bool
	// ResetAll is RESET ALL or DISCARD ALL: every setting returns to the
	// session's default, the proxy's own (mandate.*) included. SearchPath
	// is set too.
	ResetAll bool
	// Literals is set when the statement sets or resets a setting that
	// changes how PostgreSQL reads a constant while it analyses a
	// statement (literalSettings): a statement prepared before reads
	// '2024-03-03' in the old TimeZone, so the proxy's statement cache
	// must not serve it after.
	Literals *SettingChange
	// ChangesCatalog is true for DDL and for whatever else may create,
	// alter or drop relations, columns, functions, operators, types or
	// schemas (DO, CALL, SELECT INTO, DISCARD ALL/TEMP): the proxy reloads
	// its Catalog after it.
	ChangesCatalog bool
	// CopyIn is COPY … FROM STDIN: once it starts, the client streams rows
	// and PostgreSQL ignores Sync and Flush until CopyDone or CopyFail, so
	// the proxy must not count a Sync sent meanwhile as a segment.
	CopyIn bool
	// Placeholder is a SET or RESET of a custom (dotted) parameter other
	// than mandate.*: PostgreSQL keeps such a name defined on the backend
	// after RESET ALL and DISCARD ALL, so the next session there could
	// tell it was set; the proxy does not pool that connection again.
	Placeholder bool
}

// SearchPathChange is a SET or RESET of search_path.
type SearchPathChange struct {
	// Reset returns to the session's default: RESET search_path, SET
	// search_path TO DEFAULT, RESET ALL, DISCARD ALL.
	Reset bool
	// Path is the new value, one schema name per element exactly as
	// PostgreSQL stores it ("$user" included): the form Session.SearchPath
	// takes. Nil when Reset.
	Path []string
	// Local is SET LOCAL: the value lasts until the transaction ends.
	Local bool
}

// SettingChange is a SET or RESET of a setting.
type SettingChange struct {
	Local bool // SET LOCAL: the value lasts until the transaction ends
}

// literalSettings change how PostgreSQL reads constants at parse analysis
// (dates and times, intervals, arrays, money, XML, x = NULL), or what an
// immutable function it folds into a plan returns (float8out, byteaout,
// quote_ident: red team round 35, F2).
var literalSettings = map[string]bool{"timezone": true, "datestyle": true, "intervalstyle": true,
	"timezone_abbreviations": true, "array_nulls": true, "lc_monetary": true, "xmloption": true,
	"transform_null_equals": true, "extra_float_digits": true, "bytea_output": true, "quote_all_identifiers": true}

// TxControl is a transaction control statement.
type TxControl string

// Transaction controls. COMMIT PREPARED and ROLLBACK PREPARED act on another
// transaction and are TxNone.
const (
	TxNone       TxControl = ""
	TxBegin      TxControl = "begin"       // BEGIN, START TRANSACTION
	TxSavepoint  TxControl = "savepoint"   // SAVEPOINT name
	TxRelease    TxControl = "release"     // RELEASE [SAVEPOINT] name
	TxRollbackTo TxControl = "rollback_to" // ROLLBACK TO [SAVEPOINT] name
	TxCommit     TxControl = "commit"      // COMMIT, END
	TxRollback   TxControl = "rollback"    // ROLLBACK, ABORT
	TxPrepare    TxControl = "prepare"     // PREPARE TRANSACTION: settings persist as on COMMIT
)

// Ends reports whether the transaction ends (COMMIT, ROLLBACK, PREPARE
// TRANSACTION), which also ends every SET LOCAL.
func (t TxControl) Ends() bool { return t == TxCommit || t == TxRollback || t == TxPrepare }

// Effects reports the effect of every statement, for statements the proxy
// forwards without Rewrite. A search_path change the proxy could not track
// is a 0A000 *Error, as in Rewrite.
func (s *Statements) Effects() ([]Effect, error) {
	out := make([]Effect, 0, s.Len())
	for _, raw := range s.tree.GetStmts() {
		e, err := effectOf(raw.Stmt)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func effectOf(n *pgNode) (Effect, error) {
	var e Effect
	switch x := n.GetNode().(type) {
	case *pgNodeVariableSetStmt:
		sp, err := searchPathChange(x.VariableSetStmt)
		e.SearchPath = sp
		e.ResetAll = x.VariableSetStmt.Kind == pgVariableSetKindVARRESETALL
		name := strings.ToLower(x.VariableSetStmt.Name)
		e.Placeholder = strings.Contains(name, ".") && !strings.HasPrefix(name, "mandate.")
		if literalSettings[name] {
			e.Literals = &SettingChange{Local: x.VariableSetStmt.IsLocal}
		}
		return e, err
	case *pgNodeTransactionStmt:
		t := x.TransactionStmt
		e.Savepoint, e.Chain = t.SavepointName, t.Chain
		switch t.Kind {
		case pgTransStmtBegin, pgTransStmtStart:
			e.Tx = TxBegin
		case pgTransStmtSavepoint:
			e.Tx = TxSavepoint
		case pgTransStmtRelease:
			e.Tx = TxRelease
		case pgTransStmtRollbackTo:
			e.Tx = TxRollbackTo
		case pgTransStmtCommit:
			e.Tx = TxCommit
		case pgTransStmtRollback:
			e.Tx = TxRollback
		case pgTransStmtPrepare:
			e.Tx = TxPrepare
		}
		return e, nil
	case *pgNodeDiscardStmt:
		switch x.DiscardStmt.Target {
		case pgDiscardModeDISCARDALL:
			// DISCARD ALL is RESET ALL plus dropping temp tables.
			e.SearchPath = &SearchPathChange{Reset: true}
			e.ResetAll = true
			e.ChangesCatalog = true
		case pgDiscardTemp:
			e.ChangesCatalog = true
		}
		return e, nil
	}
	if c := n.GetCopyStmt(); c != nil {
		e.CopyIn = c.IsFrom && c.Filename == "" && !c.IsProgram
	}
	e.ChangesCatalog = changesCatalog(n)
	return e, nil
}

// searchPathChange reads SET/RESET of search_path. Only forms whose result
// the proxy can know from the text are accepted: a literal list, DEFAULT,
// RESET. SET … FROM CURRENT and non-string values are refused rather than
// guessed (and set_config is refused by the function check).
func searchPathChange(s *pgVariableSetStmt) (*SearchPathChange, error) {
	if s.Kind == pgVariableSetKindVARRESETALL {
		return &SearchPathChange{Reset: true}, nil
	}
	if !strings.EqualFold(s.Name, "search_path") {
		return nil, nil
	}
	switch s.Kind {
	case pgVariableSetKindVARRESET, pgVariableSetKindVARSETDEFAULT:
		return &SearchPathChange{Reset: true, Local: s.IsLocal}, nil
	case pgVariableSetKindVARSETVALUE:
	default:
		return nil, unsupported("this form of SET search_path is not supported through mandate; use SET search_path TO schema, …")
	}
	// search_path quotes each argument as one identifier: 'a, b' names a
	// single schema "a, b", as in PostgreSQL.
	path := make([]string, 0, len(s.Args))
	for _, a := range s.Args {
		sv := a.GetAConst().GetSval()
		if sv == nil {
			return nil, unsupported("SET search_path takes schema names only")
		}
		// A string names one schema, cut as identifiers are (red team
		// round 34, F2: a 64-byte string named the 63-byte schema upstream).
		path = append(path, TruncateIdentifier(sv.Sval))
	}
	return &SearchPathChange{Path: path, Local: s.IsLocal}, nil
}

// TruncateIdentifier cuts a name to PostgreSQL's 63 bytes (NAMEDATALEN-1),
// at a character's start, as the server does with every identifier.
func TruncateIdentifier(s string) string {
	if len(s) <= 63 {
		return s
	}
	n := 63
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// changesCatalog classifies DDL by parse node name: every Create*, Alter*
// and Drop* statement plus the DDL nodes named otherwise. Over-reporting
// costs a catalog reload; under-reporting leaves a stale catalog until the
// periodic refresh, which fails closed (42P01) for new relations.
func changesCatalog(n *pgNode) bool {
	switch x := n.GetNode().(type) {
	case *pgNodeSelectStmt:
		return x.SelectStmt.IntoClause != nil
	case *pgNodeExplainStmt:
		return changesCatalog(x.ExplainStmt.Query) // EXPLAIN ANALYZE CREATE TABLE AS
	case *pgNodeDoStmt, *pgNodeCallStmt:
		return true // run arbitrary SQL
	}
	kind := nodeKind(n)
	if strings.HasPrefix(kind, "Create") || strings.HasPrefix(kind, "Alter") || strings.HasPrefix(kind, "Drop") {
		return true
	}
	switch kind {
	case "RenameStmt", "ViewStmt", "IndexStmt", "RuleStmt", "DefineStmt", "CompositeTypeStmt",
		"ImportForeignSchemaStmt", "ReassignOwnedStmt":
		return true
	}
	return false
}
