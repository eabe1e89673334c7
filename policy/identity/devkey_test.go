package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mandate-proxy/mandate/policy"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDevKeyMintRoundTrip(t *testing.T) {
	dir := t.TempDir()
	gen, err := GenerateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, DevKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if _, err := GenerateDevKey(dir); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwrote the dev key: %v", err)
	}
	key, err := LoadDevKey(filepath.Join(dir, DevKeyFile))
	if err != nil || key.KeyID() != gen.KeyID() {
		t.Fatalf("load: %v", err)
	}

	actors := []policy.Actor{{ID: "bob", Kind: policy.ActorDelegate}, {ID: "assistant", Kind: policy.ActorAgent}}
	token, err := Mint(key, MintClaims{
		Issuer: testIss, Audience: []string{testAud}, Subject: "alice", Actors: actors,
		Scopes: []string{"read"}, TTL: 10 * time.Minute, Extra: map[string]any{"device": "cli"}, Now: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Issuer: testIss, Audiences: []string{testAud}, JWKSFile: filepath.Join(dir, DevJWKSFile), Now: (&clock{now: t0}).Now}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(token); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("dev token accepted without AllowDevKeys: %v", err)
	}

	cfg.AllowDevKeys = true
	dev, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	id, err := dev.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || !reflect.DeepEqual(id.Actors, actors) || !reflect.DeepEqual(id.Scopes, []string{"read"}) ||
		id.Claims["device"] != "cli" || !id.ExpiresAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("round trip: %+v", id)
	}
}

func TestMintRefusesNonDevKeys(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, headers map[string]string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: headers, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, headers := range map[string]map[string]string{
		"plain.pem":   nil,
		"prod-id.pem": {devKeyHeader: "prod-2024"},
	} {
		if _, err := LoadDevKey(write(name, headers)); !errors.Is(err, ErrNotDevKey) {
			t.Errorf("%s: %v, want ErrNotDevKey", name, err)
		}
	}
	claims := MintClaims{Issuer: testIss, Audience: []string{testAud}, Subject: "alice"}
	if _, err := Mint(nil, claims); !errors.Is(err, ErrNotDevKey) {
		t.Errorf("nil key: %v", err)
	}
	if _, err := Mint(&DevKey{kid: "prod", priv: priv}, claims); !errors.Is(err, ErrNotDevKey) {
		t.Errorf("non-dev kid: %v", err)
	}

	key, err := GenerateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]MintClaims{
		"reserved extra":  {Issuer: testIss, Audience: []string{testAud}, Subject: "alice", Extra: map[string]any{"sub": "root"}},
		"ambiguous actor": {Issuer: testIss, Audience: []string{testAud}, Subject: "alice", Actors: []policy.Actor{{ID: "agent:x", Kind: policy.ActorDelegate}}},
		"no subject":      {Issuer: testIss, Audience: []string{testAud}},
		"no audience":     {Issuer: testIss, Subject: "alice"},
		"negative ttl":    {Issuer: testIss, Audience: []string{testAud}, Subject: "alice", TTL: -time.Second},
		"unknown kind":    {Issuer: testIss, Audience: []string{testAud}, Subject: "alice", Actors: []policy.Actor{{ID: "x"}}},
	}
	for name, c := range bad {
		if _, err := Mint(key, c); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
}
