package rewrite

import "strings"

// The rewriter reads a statement with libpg_query's scanner, which assumes
// standard_conforming_strings = on and UTF8 text. A
// session where PostgreSQL scans differently would see other statements
// than the ones decided: with standard_conforming_strings off, 'a\' ...
// ends a string later for PostgreSQL, so text the rewriter read as a
// string is SQL to PostgreSQL; in SJIS, BIG5, GBK, UHC or GB18030 a
// character's second byte may be a backslash or a quote, and in any other
// encoding than UTF8 names are cut at other lengths. Such settings
// are refused, here for SET and by the proxy for start-up parameters and
// what the upstream reports.

// ScansLikeUpstream reports whether PostgreSQL scans SQL as the rewriter
// does under the value of setting name (as reported in ParameterStatus or
// given as a start-up parameter). Settings other than the two that matter
// are always fine.
func ScansLikeUpstream(name, value string) bool {
	switch strings.ToLower(name) {
	case "standard_conforming_strings":
		return boolOn(value)
	case "client_encoding":
		// UTF8 only: PostgreSQL converts names and identifiers to the
		// server's encoding before it cuts them to 63 bytes, where the
		// rewriter and the proxy count the client's bytes; under LATIN1
		// two names 41 bytes long for mandate were one 81-byte name cut
		// short upstream (red team round 9, J1).
		switch cleanEncodingName(value) {
		case "utf8", "unicode":
			return true
		}
		return false
	}
	return true
}

// boolOn reports whether value is one of PostgreSQL's spellings of true.
func boolOn(value string) bool {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "on", "true", "tru", "tr", "t", "yes", "ye", "y", "1":
		return true
	}
	return false
}

// cleanEncodingName lower-cases name and drops everything but letters and
// digits, as PostgreSQL's clean_encoding_name does before its lookup.
func cleanEncodingName(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		}
	}
	return string(b)
}
