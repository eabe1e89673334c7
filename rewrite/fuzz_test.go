package rewrite

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRewrite: for any input that parses, Rewrite returns a typed refusal
// (never an internal error or a panic) or SQL that parses and in which every
// protected relation sits inside its filtered, masked derived table, and
// which means what deparsing the whole rewritten tree means.
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
			// Joining must not merge or split statements (a comment
			// swallowing the "; " between them, say).
			if out, _ := Parse(res.SQL); out.Len() != stmts.Len() {
				t.Fatalf("%s: %d statements in, %d out\ninput:  %s\noutput: %s", name, stmts.Len(), out.Len(), sql, res.SQL)
			}
			// Splicing must mean what deparsing the rewritten tree means: a
			// splice that glues tokens can still parse, as something else.
			whole := *opts
			whole.deparseAll = true
			want, err := Rewrite(stmts, cat, Session{}, &setSource{set: sets[name]}, &whole)
			var re *Error
			switch {
			case err == nil:
				if g, w := meaning(res.SQL), meaning(want.SQL); g != w && g != "" && w != "" {
					t.Fatalf("%s: splice and deparse differ\ninput:   %s\nsplice:  %s\ndeparse: %s", name, sql, g, w)
				}
			case !errors.As(err, &re) || re.Code != CodeUnsupported:
				// Splicing forwards the client's own spelling; the deparser
				// may only refuse what it cannot write back faithfully.
				t.Fatalf("%s: deparse path fails where splice succeeded: %v\ninput: %s", name, err, sql)
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

// meaning is normalize's form of sql, or "" when the deparser cannot write
// it back (SELECT (0).a): then there is nothing to compare.
func meaning(sql string) string {
	stmts, err := Parse(sql)
	if err != nil {
		return ""
	}
	var out []string
	for _, raw := range stmts.tree.Stmts {
		s, err := deparse(raw.Stmt)
		if err != nil {
			return ""
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}
