package rewrite

import (
	"errors"
	"reflect"
	"testing"
)

func TestEffects(t *testing.T) {
	sp := func(local bool, path ...string) *SearchPathChange {
		return &SearchPathChange{Path: path, Local: local}
	}
	reset := &SearchPathChange{Reset: true}
	tests := []struct {
		sql  string
		want Effect
	}{
		{"SELECT 1", Effect{}},
		{`SET search_path = "Sales", public, '$user', 'a, b'`, Effect{SearchPath: sp(false, "Sales", "public", "$user", "a, b")}},
		{"SET LOCAL search_path TO app", Effect{SearchPath: sp(true, "app")}},
		{"SET SCHEMA 'app'", Effect{SearchPath: sp(false, "app")}},
		{"SET Search_Path = ''", Effect{SearchPath: sp(false, "")}},
		{"RESET search_path", Effect{SearchPath: reset}},
		{"SET LOCAL search_path TO DEFAULT", Effect{SearchPath: &SearchPathChange{Reset: true, Local: true}}},
		{"RESET ALL", Effect{SearchPath: reset, ResetAll: true}},
		{"DISCARD ALL", Effect{SearchPath: reset, ResetAll: true, ChangesCatalog: true}},
		{"DISCARD TEMP", Effect{ChangesCatalog: true}},
		{"DISCARD PLANS", Effect{}},
		{"SET work_mem = '64MB'", Effect{}},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", Effect{Tx: TxBegin}},
		{"START TRANSACTION", Effect{Tx: TxBegin}},
		{"SAVEPOINT s1", Effect{Tx: TxSavepoint, Savepoint: "s1"}},
		{"RELEASE s1", Effect{Tx: TxRelease, Savepoint: "s1"}},
		{"ROLLBACK TO SAVEPOINT s1", Effect{Tx: TxRollbackTo, Savepoint: "s1"}},
		{"COMMIT", Effect{Tx: TxCommit}},
		{"END", Effect{Tx: TxCommit}},
		{"COMMIT AND CHAIN", Effect{Tx: TxCommit, Chain: true}},
		{"ROLLBACK", Effect{Tx: TxRollback}},
		{"ABORT", Effect{Tx: TxRollback}},
		{"PREPARE TRANSACTION 'x'", Effect{Tx: TxPrepare}},
		{"COMMIT PREPARED 'x'", Effect{}},
		{"CREATE TABLE t (id int)", Effect{ChangesCatalog: true}},
		{"CREATE TEMP VIEW v AS SELECT 1", Effect{ChangesCatalog: true}},
		{"ALTER TABLE t ADD COLUMN x int", Effect{ChangesCatalog: true}},
		{"ALTER TABLE t RENAME TO u", Effect{ChangesCatalog: true}},
		{"DROP TABLE t", Effect{ChangesCatalog: true}},
		{"CREATE INDEX ON t (id)", Effect{ChangesCatalog: true}},
		{"CREATE TYPE mood AS ENUM ('a')", Effect{ChangesCatalog: true}},
		{"CREATE OPERATOR === (function = f, leftarg = int, rightarg = int)", Effect{ChangesCatalog: true}},
		{"SELECT 1 INTO t2", Effect{ChangesCatalog: true}},
		{"EXPLAIN ANALYZE CREATE TABLE t3 AS SELECT 1", Effect{ChangesCatalog: true}},
		{"DO $$ BEGIN END $$", Effect{ChangesCatalog: true}},
		{"CALL p()", Effect{ChangesCatalog: true}},
		{"TRUNCATE t", Effect{}},
		{"GRANT SELECT ON t TO u", Effect{}},
	}
	for _, tt := range tests {
		stmts, err := Parse(tt.sql)
		if err != nil {
			t.Fatalf("%s: %v", tt.sql, err)
		}
		got, err := stmts.Effects()
		if err != nil {
			t.Errorf("%s: %v", tt.sql, err)
			continue
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
			t.Errorf("%s: effect %+v (search_path %+v), want %+v", tt.sql, got, got[0].SearchPath, tt.want)
		}
	}
}

func TestEffectsRefuseUntrackableSearchPath(t *testing.T) {
	for _, sql := range []string{"SET search_path FROM CURRENT", "SET search_path = 1", "SELECT 1; SET LOCAL search_path = public, 2.5"} {
		stmts, err := Parse(sql)
		if err != nil {
			t.Fatal(err)
		}
		_, err = stmts.Effects()
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeUnsupported {
			t.Errorf("%s: got %v, want 0A000", sql, err)
		}
	}
}

func TestRewriteReportsEffects(t *testing.T) {
	cat := testCatalog(t)
	res, err := RewriteSQL("BEGIN; SET LOCAL search_path = public; SELECT * FROM countries; ROLLBACK TO SAVEPOINT a; COMMIT",
		cat, Session{}, &setSource{set: scenarios()["alice"]}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []Effect
	for _, s := range res.Statements {
		got = append(got, s.Effect)
	}
	want := []Effect{
		{Tx: TxBegin},
		{SearchPath: &SearchPathChange{Path: []string{"public"}, Local: true}},
		{},
		{Tx: TxRollbackTo, Savepoint: "a"},
		{Tx: TxCommit},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("effects %+v, want %+v", got, want)
	}
	if !TxCommit.Ends() || TxRollbackTo.Ends() {
		t.Fatal("Ends: COMMIT ends the transaction, ROLLBACK TO does not")
	}
}

// TestInvariantNeedsSchema: the golden invariant itself rejects an
// unqualified relation, so a regression cannot pass silently.
func TestInvariantNeedsSchema(t *testing.T) {
	cat, opts := testCatalog(t), testOptions()
	set := scenarios()["alice"]
	if err := checkWrapped("SELECT * FROM countries", cat, Session{}, opts, set); err == nil {
		t.Fatal("unqualified reference accepted")
	}
	if err := checkWrapped("WITH c AS (SELECT 1) SELECT * FROM c, public.countries", cat, Session{}, opts, set); err != nil {
		t.Fatal(err)
	}
}
