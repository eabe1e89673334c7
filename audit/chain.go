package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Format names the line format in the genesis line.
const Format = "mandate-audit/1"

// genesisPrev is the prev of the genesis line: nothing came before it.
var genesisPrev = strings.Repeat("0", sha256.Size*2)

// genesis is the first line of a log.
type genesis struct {
	Seq     uint64 `json:"seq"`
	Format  string `json:"format"`
	LogID   string `json:"log_id"`
	Started string `json:"started"`
	Prev    string `json:"prev"`
}

// hashSuffix frames the hash member: `,"hash":"` + 64 hex + `"}`.
const (
	hashOpen   = `,"hash":"`
	hashSuffix = len(hashOpen) + sha256.Size*2 + len(`"}`)
)

// seal appends the hash member to body (a JSON object, `{…}`) and a newline,
// writing into dst. It returns the line and the hash.
func seal(dst, body []byte) ([]byte, string) {
	sum := sha256.Sum256(body)
	var hexSum [sha256.Size * 2]byte
	hex.Encode(hexSum[:], sum[:])
	dst = append(dst, body[:len(body)-1]...)
	dst = append(dst, hashOpen...)
	dst = append(dst, hexSum[:]...)
	dst = append(dst, "\"}\n"...)
	return dst, string(hexSum[:])
}

// unseal splits a line (without its newline) into the hashed body and the
// recorded hash, and reports whether the body still matches it.
func unseal(line []byte) (body []byte, hash string, ok, framed bool) {
	if len(line) < hashSuffix+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[len(line)-hashSuffix:len(line)-hashSuffix+len(hashOpen)], []byte(hashOpen)) {
		return nil, "", false, false
	}
	hash = string(line[len(line)-hashSuffix+len(hashOpen) : len(line)-2])
	if !isLowerHex(hash) {
		return nil, "", false, false
	}
	body = make([]byte, 0, len(line)-hashSuffix+1)
	body = append(body, line[:len(line)-hashSuffix]...)
	body = append(body, '}')
	sum := sha256.Sum256(body)
	return body, hash, hex.EncodeToString(sum[:]) == hash, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
