package identity

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestJWKSFileRotation(t *testing.T) {
	clk := &clock{now: t0}
	old, next := newKey(t, "k1", "EdDSA"), newKey(t, "k2", "EdDSA")
	v, path := fileVerifier(t, clk, old)
	oldToken, nextToken := sign(t, old, baseClaims()), sign(t, next, baseClaims())

	if _, err := v.Verify(oldToken); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(nextToken); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before rotation: %v", err)
	}

	// Rotation step 1: publish the new key next to the old one.
	writeJWKS(t, path, old, next)
	for _, tok := range []string{oldToken, nextToken} {
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("during rotation: %v", err)
		}
	}
	// Step 2: retire the old key.
	writeJWKS(t, path, next)
	if _, err := v.Verify(nextToken); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(oldToken); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retired key still accepted: %v", err)
	}

	// A half-written file keeps the last good set.
	if err := os.WriteFile(path, []byte(`{"keys":[`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(nextToken); err != nil {
		t.Fatalf("broken file dropped the keys: %v", err)
	}
}

// A rewrite in place that keeps size and mtime escapes the stat check; an
// unknown kid forces a re-read, at most once per second of the clock.
func TestJWKSFileForcedReload(t *testing.T) {
	clk := &clock{now: t0}
	a, b, c := newKey(t, "ka", "EdDSA"), newKey(t, "kb", "EdDSA"), newKey(t, "kc", "EdDSA")
	v, path := fileVerifier(t, clk, a)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(k testKey) {
		if err := os.WriteFile(path, jwksJSON(t, k), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(sign(t, a, baseClaims())); err != nil {
		t.Fatal(err)
	}
	rewrite(b)
	if _, err := v.Verify(sign(t, b, baseClaims())); err != nil {
		t.Fatalf("forced reload missed the new key: %v", err)
	}
	rewrite(c)
	if _, err := v.Verify(sign(t, c, baseClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("second forced reload within a second: %v", err)
	}
	clk.Add(forcedReloadEvery)
	if _, err := v.Verify(sign(t, c, baseClaims())); err != nil {
		t.Fatalf("after a second: %v", err)
	}
}

// jwksServer serves a swappable JWKS and counts requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	body []byte
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.body)
	}))
	return s
}

func (s *jwksServer) set(body []byte) { s.mu.Lock(); s.body = body; s.mu.Unlock() }

func TestJWKSURLRotationAndCaching(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := &clock{now: t0}
	k1, k2 := newKey(t, "k1", "ES256"), newKey(t, "k2", "RS256")
	srv := newJWKSServer(t, jwksJSON(t, k1))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()

	v, err := NewVerifier(Config{
		Issuer: testIss, Audiences: []string{testAud}, Now: clk.Now,
		JWKSURL: srv.URL + "/jwks", HTTPClient: client,
		RefreshInterval: time.Hour, UnknownKIDRefresh: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("initial fetch: %d hits", got)
	}

	tok1, tok2 := sign(t, k1, baseClaims()), sign(t, k2, baseClaims())
	for range 5 {
		if _, err := v.Verify(tok1); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("cached key refetched: %d hits", got)
	}

	// The issuer rotates to k2; the first k2 token triggers one refresh.
	srv.set(jwksJSON(t, k2))
	if _, err := v.Verify(tok2); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("rotation: %d hits, want 2", got)
	}
	// The refresh replaced the set: k1 is gone, and further unknown kids
	// are rate limited instead of hitting the issuer again.
	for _, tok := range []string{tok1, sign(t, newKey(t, "made-up", "EdDSA"), baseClaims())} {
		if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err %v, want unknown key", err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("unknown kids not rate limited: %d hits", got)
	}
	if _, err := v.Verify(tok2); err != nil {
		t.Fatal(err)
	}
	v.Close()
}

func TestJWKSURLIssuerDownAtStart(t *testing.T) {
	k := newKey(t, "k1", "EdDSA")
	srv := newJWKSServer(t, []byte("oops"))
	defer srv.Close()
	v, err := NewVerifier(Config{
		Issuer: testIss, Audiences: []string{testAud}, Now: (&clock{now: t0}).Now,
		JWKSURL: srv.URL, HTTPClient: srv.Client(), Logger: discardLogger(),
	})
	if err != nil {
		t.Fatalf("a failing issuer must not stop startup: %v", err)
	}
	defer v.Close()
	srv.set(jwksJSON(t, k))
	if _, err := v.Verify(sign(t, k, baseClaims())); err != nil {
		t.Fatalf("keys not fetched on demand: %v", err)
	}
}
