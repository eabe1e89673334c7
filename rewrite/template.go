package rewrite

import (
	"strings"
	"unicode"
)

// Templates: clients that do not use parameters send the same statement
// with other constants over and over ("... WHERE aid = 4711"), and each
// text is new to a cache keyed by text. When a rewrite provably does not
// depend on the values of the statement's literals, it holds for every
// statement that differs only in them: the rewritten text with each
// literal copied from the new statement, in the same place.
//
// "Differs only in its literals" is decided on PostgreSQL's own tokens
// (the scanner the parse used): the key is the statement's text with each
// literal token replaced by a marker of its kind, so every other byte,
// comments and spacing included, must be equal. The kind matters (an
// integer and a string constant resolve to different types); the value
// never does, because a rewrite is only a template when
//   - it is a single statement that reads or writes rows (no SET, COPY,
//     NOTIFY, ...: their constants are names, paths and settings),
//   - no decision read a constant's value (walker.valueDependent),
//   - every literal is copied into the output as written, at a position
//     that does not depend on its spelling (splice),
//   - the statement has no Unicode-escape token, whose meaning a later
//     literal (UESCAPE '!') changes.
// TestTemplatesAgreeWithRewrites checks the claim over the corpora.

// A Template is a rewrite that holds for every statement with its key.
type Template struct {
	parts []string // the output between literals: len(literals)+1 parts
	res   Result   // the rewrite, whose SQL Instantiate replaces
}

// Literals are a statement's template key and the spans of its literals.
type Literals struct {
	Key   string
	spans [][2]int
}

// TemplateKey scans sql and returns its key; ok is false when sql has no
// literal or cannot be a template's instance.
func TemplateKey(sql string) (l Literals, ok bool) {
	toks, err := scan(sql)
	if err != nil {
		return Literals{}, false
	}
	var b strings.Builder
	pos := 0
	for _, t := range toks {
		if t.id == tokUIdent || t.id == tokUSConst || t.id == tokUEscape {
			return Literals{}, false
		}
		k := literalKind(t)
		if k == 0 {
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(sql) + 8)
		}
		b.WriteString(sql[pos:t.start])
		b.WriteByte(0) // never part of a statement: the protocol ends strings with it
		b.WriteByte(k)
		pos = t.end
		l.spans = append(l.spans, [2]int{t.start, t.end})
	}
	if len(l.spans) == 0 {
		return Literals{}, false
	}
	b.WriteString(sql[pos:])
	l.Key = b.String()
	return l, true
}

// literalKind is a marker byte for a literal token, 0 for any other.
func literalKind(t token) byte {
	switch t.id {
	case tokIConst:
		return 'i'
	case tokFConst:
		return 'f'
	case tokSConst:
		return 's'
	case tokBConst:
		return 'b'
	case tokXConst:
		return 'x'
	}
	return 0
}

// Instantiate is the template's rewrite of sql, whose Literals (with the
// template's key) l are.
func (t *Template) Instantiate(sql string, l Literals) Result {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	for _, s := range l.spans {
		n += s[1] - s[0]
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range t.parts {
		b.WriteString(p)
		if i < len(l.spans) {
			b.WriteString(sql[l.spans[i][0]:l.spans[i][1]])
		}
	}
	res := t.res
	res.SQL = b.String()
	res.Statements = []StmtInfo{res.Statements[0]}
	res.Statements[0].SQL = res.SQL
	return res
}

// templateKinds are the statements whose literals are values, never names.
var templateKinds = map[Kind]bool{KindSelect: true, KindInsert: true, KindUpdate: true, KindDelete: true, KindMerge: true}

// literalTokens are the indices of sql's literal tokens, all of which must
// lie in [start, end); ok is false when the statement cannot be a template.
func literalTokens(toks []token, start, end int) (lits []int, ok bool) {
	for i, t := range toks {
		if t.id == tokUIdent || t.id == tokUSConst || t.id == tokUEscape {
			return nil, false
		}
		if literalKind(t) == 0 {
			continue
		}
		if t.start < start || t.end > end {
			return nil, false
		}
		lits = append(lits, i)
	}
	return lits, len(lits) > 0
}

// verbatimLiterals are the output offsets of lits in a statement forwarded
// as strings.TrimSpace(sql[start:end]).
func verbatimLiterals(sql string, toks []token, start, end int, lits []int) []int {
	text := sql[start:end]
	lead := len(text) - len(strings.TrimLeftFunc(text, unicode.IsSpace))
	out := make([]int, len(lits))
	for i, li := range lits {
		out[i] = toks[li].start - start - lead
	}
	return out
}

// newTemplate cuts the rewrite res of the one statement in sql at its
// literals, the tokens lits, found in the output at offsets pos.
func newTemplate(res Result, sql string, toks []token, lits, pos []int) *Template {
	out := res.SQL
	t := &Template{res: res, parts: make([]string, 0, len(lits)+1)}
	t.res.SQL, t.res.Template, t.res.Statements = "", nil, []StmtInfo{res.Statements[0]}
	t.res.Statements[0].SQL = ""
	prev := 0
	for i, li := range lits {
		lit := sql[toks[li].start:toks[li].end]
		n := len(lit)
		if pos[i] < prev || pos[i]+n > len(out) || out[pos[i]:pos[i]+n] != lit {
			return nil
		}
		t.parts = append(t.parts, out[prev:pos[i]])
		prev = pos[i] + n
	}
	t.parts = append(t.parts, out[prev:])
	return t
}
