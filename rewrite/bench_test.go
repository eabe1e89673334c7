package rewrite

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

const benchSQL = `SELECT c.name, a.iban, sum(t.amount) AS total
FROM customers c
JOIN accounts a ON a.customer_id = c.id
LEFT JOIN transactions t ON t.account_id = a.id AND t.category IN ('tax', 'income')
WHERE c.id = $1 AND EXISTS (SELECT 1 FROM countries k WHERE k.code = 'DE')
GROUP BY c.name, a.iban ORDER BY total DESC LIMIT 10`

// BenchmarkParseDeparse is the floor: libpg_query's parse plus deparse.
func BenchmarkParseDeparse(b *testing.B) {
	for b.Loop() {
		stmts, err := Parse(benchSQL)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := deparseUnchecked(stmts.tree.Stmts[0].Stmt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteCold is a cache miss in the proxy: parse, classify,
// rewrite three protected relations with filters and masks, splice. As in
// the proxy, the derived tables come from a DerivedCache: they depend on
// the grants, not on the statement, so a new statement under known grants
// finds them there.
func BenchmarkRewriteCold(b *testing.B) {
	cat := testCatalog(b)
	opts := testOptions()
	opts.Derived = &DerivedCache{}
	src := &setSource{set: scenarios()["dana"]}
	for b.Loop() {
		src.asked = src.asked[:0]
		if _, err := RewriteSQL(benchSQL, cat, Session{}, src, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteColdNewGrants is BenchmarkRewriteCold under grants never
// seen before: each derived table deparsed too.
func BenchmarkRewriteColdNewGrants(b *testing.B) {
	cat := testCatalog(b)
	opts := testOptions()
	src := &setSource{set: scenarios()["dana"]}
	for b.Loop() {
		src.asked = src.asked[:0]
		if _, err := RewriteSQL(benchSQL, cat, Session{}, src, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteColdQualified is BenchmarkRewriteCold with and without
// another schema's = operator (an extension's, say), for benchSQL and for
// a statement that reads no protected relation: with it, each = is
// written OPERATOR(pg_catalog.=) (qualify.go), which takes the deparser
// where the statement was spliced or forwarded as written.
func BenchmarkRewriteColdQualified(b *testing.B) {
	base := testCatalog(b)
	schemas := make([]*Schema, 0, len(base.Schemas))
	for _, s := range base.Schemas {
		schemas = append(schemas, s)
	}
	ops := append(slices.Clone(base.Operators), &Operator{Schema: "public", Name: "=", Left: "public.e", Right: "public.e"})
	shadowed, err := NewCatalog(schemas, ops)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct{ name, sql string }{
		{"protected", benchSQL},
		{"unprotected", "SELECT k.name FROM countries k WHERE k.code = $1 ORDER BY k.name"},
	} {
		for _, c := range []struct {
			name string
			cat  *Catalog
		}{{"stock", base}, {"shadowed", shadowed}} {
			b.Run(q.name+"/"+c.name, func(b *testing.B) {
				opts := testOptions()
				opts.Derived = &DerivedCache{}
				src := &setSource{set: scenarios()["dana"]}
				for b.Loop() {
					src.asked = src.asked[:0]
					res, err := RewriteSQL(q.sql, c.cat, Session{}, src, opts)
					if err != nil {
						b.Fatal(err)
					}
					if strings.Contains(res.SQL, "OPERATOR(pg_catalog.=) $1") != (c.cat == shadowed) {
						b.Fatalf("qualified only if shadowed: %s", res.SQL)
					}
				}
			})
		}
	}
}

// BenchmarkRewriteColdDeparse is BenchmarkRewriteCold with splicing off:
// the whole rewritten statement deparsed, the fallback path.
func BenchmarkRewriteColdDeparse(b *testing.B) {
	cat := testCatalog(b)
	opts := testOptions()
	opts.deparseAll = true
	src := &setSource{set: scenarios()["dana"]}
	for b.Loop() {
		src.asked = src.asked[:0]
		if _, err := RewriteSQL(benchSQL, cat, Session{}, src, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteParsed starts from a cached parse tree (Statements are
// immutable and shareable): the rewriter's own cost plus deparse.
func BenchmarkRewriteParsed(b *testing.B) {
	cat := testCatalog(b)
	opts := testOptions()
	src := &setSource{set: scenarios()["dana"]}
	stmts, err := Parse(benchSQL)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		src.asked = src.asked[:0]
		if _, err := Rewrite(stmts, cat, Session{}, src, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDeparseOutput is the floor of any AST rewrite: the output is
// several times larger than the input (one column list per protected
// relation), and deparse cost grows with it.
func BenchmarkParseDeparseOutput(b *testing.B) {
	cat := testCatalog(b)
	res, err := RewriteSQL(benchSQL, cat, Session{}, &setSource{set: scenarios()["dana"]}, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		stmts, err := Parse(res.SQL)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := deparseUnchecked(stmts.tree.Stmts[0].Stmt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTemplateManyLiterals is a cold rewrite whose template comes from
// the deparser (a condition copied into the filtered table) with 1,000
// literals: finding the slots was cubic in them (red team round 49b:
// 2,000 took half a minute of the proxy's CPU).
func BenchmarkTemplateManyLiterals(b *testing.B) {
	cat := testCatalog(b)
	src := &setSource{set: scenarios()["alice"]}
	items := make([]string, 1000)
	for i := range items {
		items[i] = strconv.Itoa(i)
	}
	sql := "SELECT id FROM accounts WHERE id > 0 AND id IN (" + strings.Join(items, ",") + ")"
	for b.Loop() {
		res, err := RewriteSQL(sql, cat, Session{}, src, testOptions())
		if err != nil {
			b.Fatal(err)
		}
		if res.Template == nil {
			b.Fatal("no template: the benchmark measures nothing")
		}
	}
}
