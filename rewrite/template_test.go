package rewrite

import (
	"fmt"
	"strings"
	"testing"
)

// otherLiterals is sql with every literal replaced by another of its kind.
func otherLiterals(sql string, l Literals) string {
	var b strings.Builder
	pos := 0
	for i, s := range l.spans {
		b.WriteString(sql[pos:s[0]])
		old := sql[s[0]:s[1]]
		var alt []string
		switch l.kinds[i] {
		case 'i':
			alt = []string{"4711", "42"}
		case 'f':
			alt = []string{"2.5", "3.75"}
		case 'g':
			alt = []string{"5000000000", "6000000000"}
		case 's':
			alt = []string{"'zq'", "'mandate.x'"}
		case 'b':
			alt = []string{"B'101'", "B'11'"}
		case 'x':
			alt = []string{"X'0F'", "X'1E'"}
		}
		next := alt[0]
		if next == old {
			next = alt[1]
		}
		b.WriteString(next)
		pos = s[1]
	}
	b.WriteString(sql[pos:])
	return b.String()
}

// templateMismatch checks res, the rewrite of sql, against rewriting
// directly: its template must give res for sql itself, and for sql with
// every literal changed exactly what a direct rewrite gives, which must
// not be a refusal.
func templateMismatch(sql string, res Result, direct func(string) (Result, error)) error {
	if res.Template == nil {
		return nil
	}
	l, ok := TemplateKey(sql)
	if !ok {
		return fmt.Errorf("a template for a statement without a key: %q", sql)
	}
	if got, ok := res.Template.Instantiate(sql, l); !ok || got.SQL != res.SQL || got.Statements[0].SQL != res.SQL {
		return fmt.Errorf("template of %q gives\n%s\nnot\n%s", sql, got.SQL, res.SQL)
	}
	other := otherLiterals(sql, l)
	l2, ok := TemplateKey(other)
	if !ok || l2.Key != l.Key {
		return nil // the replacement changed the tokens: no claim to check
	}
	want, err := direct(other)
	if err != nil {
		return fmt.Errorf("%q, an instance of the template of %q, is refused when rewritten: %v", other, sql, err)
	}
	got, ok := res.Template.Instantiate(other, l2)
	if !ok {
		return nil // spelled otherwise than the deparser would: rewritten itself
	}
	if got.SQL != want.SQL {
		return fmt.Errorf("template of %q instantiated for %q gives\n%s\nrewriting gives\n%s", sql, other, got.SQL, want.SQL)
	}
	return nil
}

// TestTemplatesAgreeWithRewrites: over the golden corpus and a few more
// statements, every template agrees with rewriting the statement with
// other constants, and statements whose rewrite reads a constant's value
// get none.
func TestTemplatesAgreeWithRewrites(t *testing.T) {
	cat := testCatalog(t)
	opts := testOptions()
	sets := scenarios()
	inputs := []struct {
		sql, scenario string
		sess          Session
	}{}
	for _, c := range loadCases(t) {
		inputs = append(inputs, struct {
			sql, scenario string
			sess          Session
		}{c.input, c.scenario, c.sess})
	}
	extra := []string{
		"SELECT iban, balance FROM accounts WHERE id = 7",
		"SELECT iban FROM accounts WHERE iban = 'DE01' AND balance > 1.5 -- a comment '9'",
		"SELECT * FROM accounts a JOIN accounts b ON a.id = b.id + 1 WHERE a.balance < 100 LIMIT 5 OFFSET 2",
		"SELECT count(*) FROM accounts WHERE owner IN ('alice', 'bob') AND id <> -3",
		"SELECT B'101' AS b, X'0F' AS x, E'a\\'b' AS e, $$x$$ AS d FROM accounts",
		"SELECT 1",
		"UPDATE unprotected_notes SET body = 'x' WHERE id = 3",
	}
	for _, sql := range extra {
		inputs = append(inputs, struct {
			sql, scenario string
			sess          Session
		}{sql, "alice", Session{}})
	}
	templates := 0
	for _, in := range inputs {
		set := sets[in.scenario]
		direct := func(sql string) (Result, error) {
			return RewriteSQL(sql, cat, in.sess, &setSource{set: set}, opts)
		}
		res, err := direct(in.sql)
		if err != nil {
			continue
		}
		if res.Template != nil {
			templates++
		}
		if err := templateMismatch(in.sql, res, direct); err != nil {
			t.Error(err)
		}
	}
	if templates < 30 {
		t.Errorf("only %d of %d statements gave a template", templates, len(inputs))
	}

	// No template where a decision read a constant's value, nor for
	// statements whose constants are names or settings.
	for _, sql := range []string{
		"SELECT pg_notify('ch', 'x') FROM accounts",
		"SELECT current_setting('work_mem'), id FROM accounts",
		"SET search_path = 'public'",
		"NOTIFY ch, 'x'",
		"COPY accounts TO STDOUT WITH (FORMAT 'csv')",
		`SELECT * FROM U&"acc\0075nts" WHERE id = 1`,
		"SELECT U&'\\0041' AS a, id FROM accounts WHERE id = 1",
		"SELECT 1; SELECT 2",
	} {
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: sets["alice"]}, opts)
		if err == nil && res.Template != nil {
			t.Errorf("%q gave a template", sql)
		}
	}
	if _, ok := TemplateKey(`SELECT * FROM U&"a!0063counts" UESCAPE '!'`); ok {
		t.Error("a statement with UESCAPE has a template key: the escape literal changes the name")
	}
	// A long constant in a per-row qual fences; a short one does not. The
	// long statement must not be taken for an instance of the short one's
	// template (both scanners).
	short := "SELECT id FROM accounts WHERE iban < 'x'"
	long := "SELECT id FROM accounts WHERE iban < '" + strings.Repeat("x", longLiteral+1) + "'"
	res, err := RewriteSQL(short, cat, Session{}, &setSource{set: sets["alice"]}, opts)
	if err != nil || res.Template == nil || res.Statements[0].Fenced {
		t.Fatalf("%q: want an unfenced template, got %+v, %v", short, res.Statements, err)
	}
	for _, sql := range []string{long, long + " -- the real scanner"} {
		if _, ok := TemplateKey(sql); ok {
			t.Errorf("a statement with a literal over %d bytes has a template key", longLiteral)
		}
	}
	if res, err := RewriteSQL(long, cat, Session{}, &setSource{set: sets["alice"]}, opts); err != nil || !res.Statements[0].Fenced {
		t.Errorf("a comparison with a literal over %d bytes: want fenced, got %+v, %v", longLiteral, res.Statements, err)
	}
}

// FuzzPlainLiterals: whenever the plain scanner is sure, it finds exactly
// the key and literals libpg_query's scanner finds.
func FuzzPlainLiterals(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
		"SELECT 'a''b', \"x\"\"y\", 1.5e3, .5, 2147483647, 2147483648, 007 FROM t WHERE a<>'x'",
		"SELECT 1e", "SELECT 0x1F", "SELECT 1_000", "SELECT t.5", "SELECT 1..2", "SELECT e'x'", "SELECT 'a'\n'b'",
		"SELECT 'unterminated", "SELECT 1 -- c", "SELECT /* c */ 1", "SELECT $1", "SELECT U&\"a\"", "SELECT 1::int4",
		"SELECT 1 FROM t WHERE a < '" + strings.Repeat("y", longLiteral) + "'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		got, ok, sure := plainLiterals(sql)
		if !sure {
			return
		}
		want, wantOK := scannedLiterals(sql)
		if ok != wantOK || got.Key != want.Key || fmt.Sprint(got.spans, got.kinds) != fmt.Sprint(want.spans, want.kinds) {
			t.Fatalf("%q:\nplain   %v %q %v\nscanner %v %q %v", sql, ok, got.Key, got.spans, wantOK, want.Key, want.spans)
		}
	})
}

// TestSignDependentNumbersKeepTheirKey (red team round 42, F3): 2147483648
// is int8 and -2147483648 int4 to PostgreSQL, 9223372036854775808 numeric
// and -9223372036854775808 int8, so no template made from a number of one
// type may serve these, whose sign decides theirs.
func TestSignDependentNumbersKeepTheirKey(t *testing.T) {
	key := func(sql string) string {
		t.Helper()
		l, ok := TemplateKey(sql)
		if !ok {
			return ""
		}
		return l.Key
	}
	for _, pair := range [][2]string{
		{"SELECT a || -2147483648 FROM t WHERE id = 1", "SELECT a || -3000000000 FROM t WHERE id = 1"},
		{"SELECT a || -9223372036854775808 FROM t WHERE id = 1", "SELECT a || -99999999999999999999 FROM t WHERE id = 1"},
		{"SELECT a || -9223372036854775808 FROM t WHERE id = 1", "SELECT a || -9223372036854775807 FROM t WHERE id = 1"},
	} {
		if k := key(pair[0]); k == key(pair[1]) {
			t.Errorf("%q and %q share the key %q", pair[0], pair[1], k)
		}
	}
	if key("SELECT a || -2147483647 FROM t WHERE id = 1") != key("SELECT a || -7 FROM t WHERE id = 1") {
		t.Error("int4 literals no longer share a key")
	}
	for lit, want := range map[string]string{
		"-2147483648": "int4", "2147483648": "int8", "-9223372036854775808": "int8",
		"9223372036854775808": "numeric", "1.5": "numeric", "1e3": "numeric",
		// PostgreSQL 16's forms (red team round 46a).
		"0x7FFFFFFFFF": "int8", "1_000_000_000_000": "int8", "0o17777777777777": "int8",
		"0b11111111111111111111111111111111": "int8", "-0x80000000": "int4", "0x80000000": "int8",
		"0xFFFFFFFFFFFFFFFFF": "numeric", "1_000.5": "numeric",
	} {
		if got := numberType(lit); got != want {
			t.Errorf("numberType(%s) = %s, PostgreSQL's is %s", lit, got, want)
		}
	}
	// Every literal the key abstracts is one the template fills (red team
	// round 44a: 2147483648 was kept out of the key but given a slot, and
	// the next statement of the key panicked the proxy).
	cat := testCatalog(t)
	for _, sql := range []string{"SELECT 2147483648, 1e3", "SELECT 2147483648, 1.5", "SELECT -2147483648, 2", "SELECT -2147483648, 3"} {
		res, err := RewriteSQL(sql, cat, Session{}, nil, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		l, ok := TemplateKey(sql)
		if tpl := res.Template; ok && tpl != nil {
			if got, ok := tpl.Instantiate(sql, l); !ok || got.SQL != res.SQL {
				t.Errorf("%s: template gives %q, %v; the rewrite %q", sql, got.SQL, ok, res.SQL)
			}
		}
	}
}

// TestTemplateMarkerSpelledByTheStatement (red team round 51b, high): a
// statement whose own text spells a literal marker, here an alias quoted
// to read as one, gets no template from the deparsed form: a slot found
// inside the identifier would paste the next statement's literal there
// unparsed, closing the identifier and running the rest as SQL.
func TestTemplateMarkerSpelledByTheStatement(t *testing.T) {
	cat := testCatalog(t)
	src := &setSource{set: scenarios()["alice"]}
	const marker = "mandate\x01literal0\x01"
	alias := `"'` + marker + `'"`
	sql := "SELECT '" + marker + "' AS " + alias + " FROM accounts"
	res, err := RewriteSQL(sql, cat, Session{}, src, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Statements[0].Rewritten || !strings.Contains(res.SQL, "customer_id OPERATOR") {
		t.Fatalf("not the deparsed path the attack needs: %s", res.SQL)
	}
	if res.Template != nil {
		payload := `'x", (SELECT ssn FROM public.customers) AS "y'`
		next := "SELECT " + payload + " AS " + alias + " FROM accounts"
		if l, ok := TemplateKey(next); ok {
			got, _ := res.Template.Instantiate(next, l)
			t.Errorf("a template from a statement spelling its marker; the next statement becomes %s", got.SQL)
		} else {
			t.Error("a template from a statement spelling its marker")
		}
	}
}
