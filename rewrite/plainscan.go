package rewrite

import "strings"

// plainLiterals finds the literals of a statement written in a plain
// subset of SQL without calling libpg_query: each cgo call enters a system
// call, which on an otherwise idle process wakes the Go runtime's sysmon
// thread, a context switch that cost more than the whole template lookup
// (see proxy/rawconn.go for the same effect on sockets).
//
// The subset is where PostgreSQL's lexer is simple: ASCII text; numbers
// written as digits with an optional fraction and exponent; strings in
// plain single quotes; quoted identifiers. Anything else - comments,
// backslashes, $ (parameters, dollar quotes), prefixed strings (E'x',
// B'1', X'f', N'x', U&'x'), U&"x", string continuations, a number with trailing
// letters, dots or underscores, control characters - makes sure false, and
// TemplateKey asks the real scanner. When sure, l and ok are exactly what
// the scanner-based key gives (FuzzPlainLiterals checks it).
func plainLiterals(sql string) (l Literals, ok, sure bool) {
	var b strings.Builder
	pos := 0
	add := func(start, end int, kind byte) {
		if b.Len() == 0 {
			b.Grow(len(sql) + 8)
		}
		b.WriteString(sql[pos:start])
		b.WriteByte(0)
		b.WriteByte(kind)
		pos = end
		l.spans = append(l.spans, [2]int{start, end})
		l.kinds = append(l.kinds, kind)
	}
	n := len(sql)
	for i := 0; i < n; i++ {
		if c := sql[i]; c >= 0x7f || c == '\\' || c == '$' || c < 0x20 && !lexSpace(c) {
			return Literals{}, false, false
		}
	}
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == '-' && i+1 < n && sql[i+1] == '-', c == '/' && i+1 < n && sql[i+1] == '*':
			return Literals{}, false, false // a comment
		case c == '"' || c == '\'':
			if i > 0 && (identByte(sql[i-1]) || sql[i-1] == '&') {
				return Literals{}, false, false // E'…', U&"…" and the like
			}
			j := i + 1
			for {
				k := strings.IndexByte(sql[j:], c)
				if k < 0 {
					return Literals{}, false, false // unterminated
				}
				j += k + 1
				if j < n && sql[j] == c {
					j++ // a doubled quote stands for one
					continue
				}
				break
			}
			if c == '"' && j == i+2 {
				return Literals{}, false, false // "" is no identifier
			}
			if c == '\'' {
				k := j
				for k < n && lexSpace(sql[k]) {
					k++
				}
				if k < n && sql[k] == '\'' {
					return Literals{}, false, false // maybe a continuation
				}
				add(i, j, 's')
			}
			i = j
		case identByte(c) && !isDigit(c):
			for i < n && identByte(sql[i]) {
				i++
			}
		case isDigit(c) || c == '.' && i+1 < n && isDigit(sql[i+1]):
			if i > 0 && sql[i-1] == '.' {
				return Literals{}, false, false
			}
			j, digits, float := i, 0, false
			for j < n && isDigit(sql[j]) {
				j, digits = j+1, digits+1
			}
			if j < n && sql[j] == '.' {
				j, float = j+1, true
				for j < n && isDigit(sql[j]) {
					j++
				}
			}
			if j < n && (sql[j] == 'e' || sql[j] == 'E') {
				j, float = j+1, true
				if j < n && (sql[j] == '+' || sql[j] == '-') {
					j++
				}
				if j >= n || !isDigit(sql[j]) {
					return Literals{}, false, false
				}
				for j < n && isDigit(sql[j]) {
					j++
				}
			}
			if j < n && (identByte(sql[j]) || sql[j] == '.') {
				return Literals{}, false, false // trailing junk, 0x1F, 1_000, 1..2
			}
			kind := byte('f')
			switch {
			case !float && fitsInt32(sql[i:i+digits]):
				kind = 'i'
			case !float:
				kind = numberKind(sql[i:j])
			}
			add(i, j, kind)
			i = j
		case strings.IndexByte(opChars, c) >= 0:
			j := i
			for j < n && strings.IndexByte(opChars, sql[j]) >= 0 {
				if j+1 < n && (sql[j] == '-' && sql[j+1] == '-' || sql[j] == '/' && sql[j+1] == '*') {
					return Literals{}, false, false // a comment ends the operator
				}
				j++
			}
			if j-i >= 63 {
				return Literals{}, false, false // longer than an operator may be
			}
			i = j
		default:
			i++ // punctuation, white space
		}
	}
	if len(l.spans) == 0 || hasLongLiteral(l.spans) {
		return Literals{}, false, true
	}
	b.WriteString(sql[pos:])
	l.Key = b.String()
	return l, true, true
}

// opChars may form operators (PostgreSQL's op_chars).
const opChars = "~!@#^&|`?+-*/%<>="

// lexSpace is PostgreSQL's white space: space, \t, \n, \r, \f, \v.
func lexSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// fitsInt32 reports whether a string of decimal digits is at most
// 2147483647, as PostgreSQL's lexer decides between ICONST and FCONST.
func fitsInt32(digits string) bool {
	digits = strings.TrimLeft(digits, "0")
	return len(digits) < 10 || len(digits) == 10 && digits <= "2147483647"
}
