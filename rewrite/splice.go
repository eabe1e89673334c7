package rewrite

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Splicing: most of a rewritten statement is the user's own text. Deparsing
// the whole rewritten tree costs several times a parse (the output is much
// larger than the input), so when every change has an exact text span the
// statement is forwarded as its original text with only those spans
// replaced: each protected relation name by its derived table (the derived
// table alone is deparsed), each unqualified relation name prefixed with its
// schema, each whole-row reference by its typed row. Whenever a span cannot
// be determined exactly (writes to protected relations, schema-qualified
// column references to wrapped relations, TABLESAMPLE, a name the scanner
// does not confirm), the statement is deparsed whole, as before.

// spliceEdit replaces text[start:end] with text; site, when set, supplies
// the derived table once apply has built it.
type spliceEdit struct {
	start, end int
	text       string
	site       *site
}

// splicePlan finds the span of every change apply will make, before apply
// changes the tree. ok is false when some change has no exact span.
func (w *walker) splicePlan(sql string, toks []token) (edits []spliceEdit, ok bool) {
	if len(w.targets) > 0 || len(w.colFixes) > 0 {
		return nil, false
	}
	for _, t := range toks {
		// splice trims its result as Go does, taking Unicode spaces that
		// PostgreSQL reads as part of a name ("FROM t\u00a0" is not t).
		if t.id == tokIdent && endsInUnicodeSpace(sql[t.start:t.end]) {
			return nil, false
		}
	}
	for _, s := range w.sites {
		e, ok := siteEdit(sql, toks, s)
		if !ok {
			return nil, false
		}
		edits = append(edits, e)
	}
	for _, q := range w.quals {
		if q.hide != nil {
			e, ok := siteEdit(sql, toks, q.hide)
			if !ok {
				return nil, false
			}
			edits = append(edits, e)
			continue
		}
		if q.rv.Schemaname != "" || q.rv.Catalogname != "" {
			return nil, false // replacing a written schema: not worth a span
		}
		// The name (after any ONLY) starts at Location: insert the schema.
		start := int(q.rv.Location)
		if i := tokenAt(toks, start); i < 0 || !nameToken(sql, toks[i], q.rv.Relname) {
			return nil, false
		}
		edits = append(edits, qualifierEdit(sql, start, q.schema))
	}
	if len(w.betweens) > 0 {
		return nil, false
	}
	for _, f := range w.names {
		if f.call == nil {
			return nil, false
		}
		// The name starts at the call's Location: insert the schema.
		start := int(f.call.Location)
		if i := tokenAt(toks, start); i < 0 || !nameToken(sql, toks[i], f.name) {
			return nil, false
		}
		edits = append(edits, qualifierEdit(sql, start, f.schema))
	}
	for _, f := range w.rows {
		cr := f.ref.GetColumnRef()
		i := tokenAt(toks, int(cr.GetLocation()))
		if i < 0 || !nameToken(sql, toks[i], f.it.refname) {
			return nil, false
		}
		end := toks[i].end
		if len(cr.Fields) == 2 { // t.* as a function argument
			j := nextToken(toks, i)
			k := nextToken(toks, j)
			if j < 0 || k < 0 || toks[j].id != tokDot || toks[k].id != tokStar {
				return nil, false
			}
			end = toks[k].end
		}
		if f.entry != nil {
			// The text adds "AS ref" to name the output column, which is
			// only valid if the reference is the whole target, not inside
			// parentheses ("SELECT (t) …") or under a cast: leave that to
			// the deparser.
			if p := prevToken(toks, i); f.nested || p >= 0 && sql[toks[p].start:toks[p].end] == "(" {
				return nil, false
			}
		}
		edits = append(edits, spliceEdit{start: toks[i].start, end: end, text: w.wholeRowText(f, sql[toks[i].start:toks[i].end])})
	}
	sort.Slice(edits, func(a, b int) bool { return edits[a].start < edits[b].start })
	for k := 1; k < len(edits); k++ {
		if edits[k].start < edits[k-1].end {
			return nil, false
		}
	}
	return edits, true
}

// qualifierEdit inserts "schema." before the name starting at start.
func qualifierEdit(sql string, start int, schema string) spliceEdit {
	text := quoteIdent(schema) + "."
	if start > 0 && identByte(sql[start-1]) {
		// A quoted name may be glued to the keyword before it (FROM"t",
		// SELECT"lower"(x)): a bare schema must not join that keyword.
		text = " " + text
	}
	return spliceEdit{start: start, end: start, text: text}
}

// siteEdit replaces the reference of a site by its derived table.
func siteEdit(sql string, toks []token, s *site) (spliceEdit, bool) {
	if s.sample != nil {
		return spliceEdit{}, false
	}
	start, end, last, ok := relationSpan(sql, toks, s.rv)
	if !ok {
		return spliceEdit{}, false
	}
	e := spliceEdit{start: start, end: end, site: s}
	if s.rv.Alias == nil {
		// The derived table needs the name the query uses for it; the
		// user's own spelling of it is a valid alias unless it is a
		// keyword only allowed after a dot.
		if toks[last].keyword && !toks[last].colID {
			return spliceEdit{}, false
		}
		e.text = " AS " + sql[toks[last].start:toks[last].end]
	}
	return e, true
}

// splice applies edits to sql[start:end], deparsing each derived table
// apply built. Trailing comments are dropped, so statements can be joined.
// lits are the indices of literal tokens in the range (template.go): their
// offsets in the output are returned, or nil when one of them is not
// copied as it is written.
func splice(sql string, toks []token, start, end int, edits []spliceEdit, cache *DerivedCache, grants uint64, fenced bool, lits []int) (string, []int, error) {
	if last := lastToken(toks, start, end); last >= 0 {
		end = toks[last].end
	}
	var b strings.Builder
	b.Grow(end - start + 512*len(edits))
	var litPos []int
	litsOK := len(lits) > 0
	li := 0
	copyText := func(from, to int) {
		for ; li < len(lits) && toks[lits[li]].start < to; li++ {
			if t := toks[lits[li]]; t.start >= from && t.end <= to {
				litPos = append(litPos, b.Len()+t.start-from)
			} else {
				litsOK = false // inside a replaced span
			}
		}
		b.WriteString(sql[from:to])
	}
	pos := start
	for _, e := range edits {
		if e.start < start || e.end > end {
			return "", nil, errSpan
		}
		copyText(pos, e.start)
		if e.site != nil {
			key := derivedKey(e.site, grants, fenced)
			inner, ok := cache.get(key)
			if !ok || key == "" {
				var err error
				if inner, err = deparse(e.site.slot.GetRangeSubselect().GetSubquery()); err != nil {
					return "", nil, err
				}
				if key != "" {
					cache.put(key, inner)
				}
			}
			b.WriteByte('(')
			b.WriteString(inner)
			b.WriteByte(')')
		}
		b.WriteString(e.text)
		pos = e.end
		// The replaced span may have ended glued to the next token
		// ("Accounts*WHERE"); an inserted alias must not glue to it.
		if n := len(e.text); n > 0 && identByte(e.text[n-1]) && pos < len(sql) && (identByte(sql[pos]) || sql[pos] == '"') {
			b.WriteByte(' ')
		}
		if li < len(lits) && toks[lits[li]].start == pos {
			litsOK = false // whether a space follows depends on the literal's spelling
		}
	}
	copyText(pos, end)
	out := b.String()
	trimmed := strings.TrimSpace(out)
	if !litsOK || li != len(lits) {
		return trimmed, nil, nil
	}
	lead := len(out) - len(strings.TrimLeftFunc(out, unicode.IsSpace))
	for i := range litPos {
		litPos[i] -= lead
	}
	return trimmed, litPos, nil
}

var errSpan = unsupported("statement text does not match its parse")

// relationSpan is the text of a relation reference that a derived table
// replaces: [ONLY [(]] name[.name…] [*] [)], without the alias. last is the
// index of the relation name's own token.
func relationSpan(sql string, toks []token, rv *pgRangeVar) (start, end, last int, ok bool) {
	i := tokenAt(toks, int(rv.Location))
	if i < 0 {
		return 0, 0, 0, false
	}
	var parts []string
	for _, p := range []string{rv.Catalogname, rv.Schemaname} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	parts = append(parts, rv.Relname)
	j := i
	for n, p := range parts {
		if n > 0 {
			if d := nextToken(toks, j); d < 0 || toks[d].id != tokDot {
				return 0, 0, 0, false
			} else {
				j = nextToken(toks, d)
			}
		}
		if j < 0 || !nameToken(sql, toks[j], p) {
			return 0, 0, 0, false
		}
	}
	start, end, last = toks[i].start, toks[j].end, j
	if k := nextToken(toks, j); k >= 0 && toks[k].id == tokStar {
		end = toks[k].end // t *: inheritance, the default
	}
	if !rv.Inh {
		p := prevToken(toks, i)
		paren := p >= 0 && toks[p].id == tokLParen
		if paren {
			p = prevToken(toks, p)
		}
		if p < 0 || toks[p].id != tokOnly {
			return 0, 0, 0, false
		}
		start = toks[p].start
		if paren {
			k := nextToken(toks, j)
			if k < 0 || toks[k].id != tokRParen {
				return 0, 0, 0, false
			}
			end = toks[k].end
		}
		i = p
	}
	// Only where a FROM item is written may a derived table replace it
	// (TABLE t has a FROM item but no FROM clause).
	switch p := prevToken(toks, i); {
	case p < 0:
		return 0, 0, 0, false
	case toks[p].id == tokFrom, toks[p].id == tokJoin, toks[p].id == tokUsing, toks[p].id == tokComma, toks[p].id == tokLParen:
	default:
		return 0, 0, 0, false
	}
	return start, end, last, true
}

// nameToken reports whether t spells the identifier name: a keyword or a
// bare identifier down-cased, a quoted one with "" undone.
func nameToken(sql string, t token, name string) bool {
	text := sql[t.start:t.end]
	switch {
	case t.keyword:
		return strings.ToLower(text) == name
	case t.id != tokIdent:
		return false
	case strings.HasPrefix(text, `"`):
		return len(text) >= 2 && strings.ReplaceAll(text[1:len(text)-1], `""`, `"`) == name
	}
	return asciiLower(text) == name
}

// asciiLower down-cases as PostgreSQL does for identifiers in UTF-8: ASCII
// letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func tokenAt(toks []token, pos int) int {
	i := sort.Search(len(toks), func(i int) bool { return toks[i].start >= pos })
	if i < len(toks) && toks[i].start == pos {
		return i
	}
	return -1
}

func isComment(t token) bool { return t.id == tokComment || t.id == tokCComment }

func nextToken(toks []token, i int) int {
	for i++; i < len(toks); i++ {
		if !isComment(toks[i]) {
			return i
		}
	}
	return -1
}

func prevToken(toks []token, i int) int {
	for i--; i >= 0; i-- {
		if !isComment(toks[i]) {
			return i
		}
	}
	return -1
}

// lastToken is the last non-comment token inside [start, end).
func lastToken(toks []token, start, end int) int {
	i := sort.Search(len(toks), func(i int) bool { return toks[i].start >= end })
	for i--; i >= 0 && toks[i].start >= start; i-- {
		if !isComment(toks[i]) {
			return i
		}
	}
	return -1
}

// wholeRowText is wholeRowNode as text, written around the reference's own
// spelling (ref) so it resolves as the user's reference did.
func (w *walker) wholeRowText(f wholeRowFix, ref string) string {
	typ := quoteIdent(w.schemaOf(f.it.table)) + "." + quoteIdent(f.it.table.Name)
	val := "ROW(" + ref + ".*)::" + typ
	if f.it.nullable {
		val = "CASE WHEN " + ref + ".* IS DISTINCT FROM NULL THEN " + val + " END"
	}
	val = "(" + val + ")"
	if f.entry != nil {
		val += " AS " + ref
	}
	return val
}

// endsInUnicodeSpace reports whether name ends in a character that
// strings.TrimSpace removes but PostgreSQL reads as part of the name.
func endsInUnicodeSpace(name string) bool {
	r, _ := utf8.DecodeLastRuneInString(name)
	return r >= utf8.RuneSelf && unicode.IsSpace(r)
}

// identByte reports whether c may continue an identifier or keyword.
func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
