package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIss = "https://idp.example"
	testAud = "mandate"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testKey is a signing key and the kid/alg it is published under.
type testKey struct {
	kid    string
	alg    string
	priv   crypto.Signer
	method jwt.SigningMethod
}

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

func newKey(t testing.TB, kid, alg string) testKey {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	switch alg {
	case "RS256":
		return testKey{kid, alg, rsaKey, jwt.SigningMethodRS256}
	case "ES256":
		return testKey{kid, alg, ecKey, jwt.SigningMethodES256}
	default:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return testKey{kid, "EdDSA", priv, jwt.SigningMethodEdDSA}
	}
}

func jwksJSON(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	out, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeJWKS replaces path atomically, as a deployment tool would.
func writeJWKS(t testing.TB, path string, keys ...testKey) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, jwksJSON(t, keys...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// baseClaims is a valid token body at t0.
func baseClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIss,
		"aud": testAud,
		"sub": "alice",
		"iat": t0.Unix(),
		"exp": t0.Add(time.Hour).Unix(),
	}
}

func sign(t testing.TB, k testKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func fileVerifier(t testing.TB, clk *clock, keys ...testKey) (*Verifier, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, keys...)
	v, err := NewVerifier(Config{Issuer: testIss, Audiences: []string{"other", testAud}, JWKSFile: path, Now: clk.Now, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v, path
}
