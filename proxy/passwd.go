package proxy

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/xdg-go/scram"
)

// Verifiers maps a user name to its SCRAM-SHA-256 stored credentials.
type Verifiers map[string]scram.StoredCredentials

// scramIterations matches PostgreSQL's default scram_iterations.
const scramIterations = 4096

// NewVerifier returns a SCRAM-SHA-256 verifier for password in PostgreSQL's
// format (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>), the
// form `mandate passwd` prints and the verifier file holds.
func NewVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	client, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		return "", fmt.Errorf("password: %w", err)
	}
	creds, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(creds.StoredKey), b64(creds.ServerKey)), nil
}

// ParseVerifiers reads a verifier file: one `user:SCRAM-SHA-256$…` per line;
// blank lines and lines starting with # are ignored. Errors name the line.
func ParseVerifiers(r io.Reader) (Verifiers, error) {
	out := Verifiers{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, verifier, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:SCRAM-SHA-256$…", n)
		}
		creds, err := parseVerifier(verifier)
		if err != nil {
			return nil, fmt.Errorf("line %d (user %q): %w", n, user, err)
		}
		if _, dup := out[user]; dup {
			return nil, fmt.Errorf("line %d: user %q appears twice", n, user)
		}
		out[user] = creds
	}
	return out, sc.Err()
}

func parseVerifier(v string) (scram.StoredCredentials, error) {
	var creds scram.StoredCredentials
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		return creds, fmt.Errorf("not a SCRAM-SHA-256 verifier")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return creds, fmt.Errorf("malformed verifier")
	}
	iters, salt, ok1 := strings.Cut(params, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return creds, fmt.Errorf("malformed verifier")
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < 1 {
		return creds, fmt.Errorf("bad iteration count %q", iters)
	}
	dec := base64.StdEncoding.DecodeString
	saltB, err1 := dec(salt)
	storedB, err2 := dec(stored)
	serverB, err3 := dec(server)
	if err1 != nil || err2 != nil || err3 != nil || len(storedB) != sha256.Size || len(serverB) != sha256.Size {
		return creds, fmt.Errorf("bad base64 or key length")
	}
	creds.KeyFactors = scram.KeyFactors{Salt: string(saltB), Iters: n}
	creds.StoredKey, creds.ServerKey = storedB, serverB
	return creds, nil
}
