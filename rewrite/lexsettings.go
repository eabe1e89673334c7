package rewrite

import "strings"

// The rewriter reads a statement with libpg_query's scanner, which assumes
// standard_conforming_strings = on and text in an ASCII-safe encoding. A
// session where PostgreSQL scans differently would see other statements
// than the ones decided: with standard_conforming_strings off, 'a\' ...
// ends a string later for PostgreSQL, so text the rewriter read as a
// string is SQL to PostgreSQL; in SJIS, BIG5, GBK, UHC or GB18030 a
// character's second byte may be a backslash or a quote. Such settings
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
		return !unsafeEncodings[cleanEncodingName(value)]
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

// unsafeEncodings are the client encodings PostgreSQL refuses as server
// encodings because a multibyte character may contain an ASCII byte, by
// every alias PostgreSQL accepts (encnames.c), cleaned as it cleans them.
var unsafeEncodings = map[string]bool{
	"sjis": true, "shiftjis": true, "mskanji": true, "win932": true, "windows932": true,
	"shiftjis2004": true,
	"big5":         true, "win950": true, "windows950": true,
	"gbk": true, "win936": true, "windows936": true,
	"uhc": true, "win949": true, "windows949": true,
	"gb18030": true,
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
