package rewrite

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
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
//     that does not depend on its spelling (splice), or the deparser
//     writes each exactly as the statement spells it (deparsedTemplate),
//   - the statement has no Unicode-escape token, whose meaning a later
//     literal (UESCAPE '!') changes.
// TestTemplatesAgreeWithRewrites checks the claim over the corpora.

// A Template is a rewrite that holds for every statement with its key.
type Template struct {
	parts []string // the output around the slots: len(slots)+1 parts
	slots []int    // which literal of the statement fills each slot
	res   Result   // the rewrite, whose SQL Instantiate replaces
	// deparsed: the output is the deparser's, which spells constants its
	// own way (7 for 007, b'1' for B'1'); only statements spelling theirs
	// so fit (canonical).
	deparsed bool
	// form is where Prepare's parameters go, decided at its first call.
	formOnce sync.Once
	form     *paramForm
}

// Literals are a statement's template key and the spans of its literals.
type Literals struct {
	Key   string
	spans [][2]int
	kinds []byte // each literal's marker byte (literalKind)
}

// TemplateKey scans sql and returns its key; ok is false when sql has no
// literal or cannot be a template's instance.
func TemplateKey(sql string) (l Literals, ok bool) {
	if l, ok, sure := plainLiterals(sql); sure {
		return l, ok
	}
	return scannedLiterals(sql)
}

// scannedLiterals is TemplateKey by libpg_query's scanner.
func scannedLiterals(sql string) (l Literals, ok bool) {
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
		k := literalKind(sql, t)
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
		l.kinds = append(l.kinds, k)
	}
	if len(l.spans) == 0 || hasLongLiteral(l.spans) {
		return Literals{}, false
	}
	b.WriteString(sql[pos:])
	l.Key = b.String()
	return l, true
}

// longLiteral is the size past which a constant in a per-row qual fences
// the statement (walker.longConstant). A statement with a literal that
// long as written is no template's instance, so that no template made of
// short constants can stand for it.
const longLiteral = 256

func hasLongLiteral(spans [][2]int) bool {
	for _, sp := range spans {
		if sp[1]-sp[0] > longLiteral {
			return true
		}
	}
	return false
}

// numberKind is the kind of a number the scanner does not read as an
// int4: 'g' for one that is int8 with or without a minus sign before it,
// 'f' for numeric, and for the two whose sign decides their type a kind of
// their own, which with the sign in the key's text stands for one type:
// 'h' for 2147483648 (int8; -2147483648 is int4) and 'j' for
// 9223372036854775808 (numeric; -9223372036854775808 is int8; red team
// round 42).
func numberKind(digits string) byte {
	switch plain, negative := numberType(digits), numberType("-"+digits); {
	case plain == "int8" && negative == "int4":
		return 'h'
	case plain == "numeric" && negative == "int8":
		return 'j'
	case plain == "int8":
		return 'g'
	}
	return 'f'
}

// literalKind is a marker byte for a literal token, 0 for any other; sql
// may be "" where only whether t is a literal matters.
func literalKind(sql string, t token) byte {
	switch t.id {
	case tokIConst:
		return 'i'
	case tokFConst:
		if sql != "" {
			return numberKind(sql[t.start:t.end])
		}
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
// template's key) l are; ok is false when sql spells a constant in a way
// the template cannot reproduce, and sql must be rewritten itself.
func (t *Template) Instantiate(sql string, l Literals) (res Result, ok bool) {
	if slices.ContainsFunc(t.slots, func(k int) bool { return k >= len(l.spans) }) {
		return Result{}, false // not this template's key: never the case, never a panic
	}
	if t.deparsed {
		for i, sp := range l.spans {
			if !canonical(l.kinds[i], sql[sp[0]:sp[1]]) {
				return Result{}, false
			}
		}
	}
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	for _, k := range t.slots {
		n += l.spans[k][1] - l.spans[k][0]
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range t.parts {
		b.WriteString(p)
		if i < len(t.slots) {
			sp := l.spans[t.slots[i]]
			b.WriteString(sql[sp[0]:sp[1]])
		}
	}
	res = t.res
	res.SQL = b.String()
	res.Template, res.Literals = t, l
	res.Statements = []StmtInfo{res.Statements[0]}
	res.Statements[0].SQL = res.SQL
	return res, true
}

// canonical reports whether text, a literal of the kind, is spelled as the
// deparser spells the constant it stands for.
func canonical(kind byte, text string) bool {
	switch kind {
	case 'i':
		return text == "0" || text[0] != '0'
	case 'f', 'g', 'h', 'j':
		return true // the parser keeps the token's text, and the deparser writes it
	case 's':
		return text[0] == '\'' && strings.IndexByte(text, '\\') < 0
	case 'b', 'x':
		return text[0] == kind
	}
	return false
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
		if literalKind("", t) == 0 {
			continue
		}
		if t.start < start || t.end > end || t.end-t.start > longLiteral {
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
		t.slots = append(t.slots, i)
		prev = pos[i] + n
	}
	t.parts = append(t.parts, out[prev:])
	return t
}

// deparsedTemplate is the template of a statement whose rewritten tree stmt
// the deparser (deparse, as the statement was) wrote as out, or nil. Each literal's constants in the tree
// (found by the literal's location; a write check may hold a copy) are
// replaced by a marker string and the tree deparsed again: where the
// markers land are the slots. The template must give out back for the
// statement's own literals, so a constant the deparser spells otherwise
// (0x1F, $$x$$, a negative number folded into its minus sign) means none.
func deparsedTemplate(res Result, stmt *pgNode, deparse func(*pgNode) (string, error), out, sql string, toks []token, lits []int) *Template {
	consts := map[int32][]*pgAConst{}
	collectConsts(stmt.ProtoReflect(), consts)
	saved := make(map[*pgAConst]*pgAConst, len(lits))
	defer func() {
		for c, orig := range saved {
			c.Val, c.Isnull = orig.Val, orig.Isnull
		}
	}()
	const markerPrefix = "mandate\x01literal"
	if strings.Contains(out, markerPrefix) {
		// The statement spells a marker itself (in a quoted identifier,
		// say): a slot found there would paste a later statement's literal
		// into the identifier, unparsed (red team round 51b, high: an alias
		// spelled as the marker made a template that ran the SQL of the
		// next literal).
		return nil
	}
	marker := func(i int) string { return markerPrefix + strconv.Itoa(i) + "\x01" }
	replaced := 0
	for i, li := range lits {
		cs := consts[int32(toks[li].start)]
		if len(cs) == 0 {
			return nil
		}
		replaced += len(cs)
		for _, c := range cs {
			saved[c] = &pgAConst{Val: c.Val, Isnull: c.Isnull}
			c.Val, c.Isnull = &pgAConstSval{Sval: &pgString{Sval: marker(i)}}, false
		}
	}
	marked, err := deparse(stmt)
	if err != nil {
		return nil
	}
	t := &Template{res: res, deparsed: true}
	t.res.SQL, t.res.Template, t.res.Statements = "", nil, []StmtInfo{res.Statements[0]}
	t.res.Statements[0].SQL = ""
	// One pass from the left, each marker read where it starts (red team
	// round 49b: looking every literal's marker up anew for each slot was
	// cubic in the literals; 2,000 took half a minute of CPU).
	rest := marked
	for {
		at := strings.Index(rest, "'"+markerPrefix)
		if at < 0 {
			break
		}
		digits := at + 1 + len(markerPrefix)
		end := digits
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		slot, err := strconv.Atoi(rest[digits:end])
		if err != nil || slot >= len(lits) || !strings.HasPrefix(rest[end:], "\x01'") {
			return nil // not a marker of this statement's
		}
		t.parts = append(t.parts, rest[:at])
		t.slots = append(t.slots, slot)
		rest = rest[end+2:]
	}
	t.parts = append(t.parts, rest)
	if len(t.slots) != replaced {
		return nil // a slot is each constant the markers replaced, no other
	}
	// Every literal placed, and the statement itself reproduced exactly.
	placed := make([]bool, len(lits))
	for _, k := range t.slots {
		placed[k] = true
	}
	for _, ok := range placed {
		if !ok {
			return nil
		}
	}
	if got, ok := t.Instantiate(sql, literalsOf(sql, toks, lits)); !ok || got.SQL != out {
		return nil
	}
	return t
}

// literalsOf is the Literals (without a key) of the literal tokens lits.
func literalsOf(sql string, toks []token, lits []int) Literals {
	l := Literals{spans: make([][2]int, len(lits)), kinds: make([]byte, len(lits))}
	for i, li := range lits {
		l.spans[i], l.kinds[i] = [2]int{toks[li].start, toks[li].end}, literalKind(sql, toks[li])
	}
	return l
}

// collectConsts maps the location of every A_Const under m to the nodes.
func collectConsts(m protoreflect.Message, into map[int32][]*pgAConst) {
	visitMessages(m, func(m protoreflect.Message) bool {
		c, ok := m.Interface().(*pgAConst)
		if ok && c.Location >= 0 {
			into[c.Location] = append(into[c.Location], c)
		}
		return !ok
	})
}

// visitMessages calls f on m and, while f returns true, on every message
// below it.
func visitMessages(m protoreflect.Message, f func(protoreflect.Message) bool) {
	if !f(m) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitMessages(l.Get(i).Message(), f)
			}
		case fd.Message() != nil && !fd.IsMap():
			visitMessages(v.Message(), f)
		}
		return true
	})
}
