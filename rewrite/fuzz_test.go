package rewrite

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRewrite: for any input that parses, Rewrite returns a typed refusal
// (never an internal error or a panic) or SQL that parses and in which every
// protected relation sits inside its filtered, masked derived table.
func FuzzRewrite(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*/input.sql")
	more, _ := filepath.Glob("testdata/unsupported/*/input.sql")
	for _, name := range append(inputs, more...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(string(b))
		}
	}
	cat := testCatalog(f)
	opts := testOptions()
	sets := scenarios()
	f.Fuzz(func(t *testing.T, sql string) {
		stmts, err := Parse(sql)
		if err != nil {
			return
		}
		for _, name := range []string{"alice", "dana"} {
			res, err := Rewrite(stmts, cat, Session{}, &setSource{set: sets[name]}, opts)
			if err != nil {
				var re *Error
				if !errors.As(err, &re) || re.Code == CodeInternal || re.Code == "" {
					t.Fatalf("untyped or internal error for %q: %v", sql, err)
				}
				continue
			}
			if err := checkWrapped(res.SQL, cat, Session{}, opts, sets[name]); err != nil {
				t.Fatalf("%s: %v\ninput:  %s\noutput: %s", name, err, sql, res.SQL)
			}
			direct := func(sql string) (Result, error) {
				return RewriteSQL(sql, cat, Session{}, &setSource{set: sets[name]}, opts)
			}
			if err := templateMismatch(sql, res, direct); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	})
}
