package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/identity"
)

func TestToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out := mustCLI(t, "token", "--init-dev-key", dir)
	keyPath, jwksPath := filepath.Join(dir, identity.DevKeyFile), filepath.Join(dir, identity.DevJWKSFile)
	if want := "dev_key: " + keyPath + "\njwks_file: " + jwksPath + "\njwt_allow_dev_keys: true\n"; out != want {
		t.Fatalf("token --init-dev-key printed %q, want %q", out, want)
	}
	failCLI(t, "file already exists (it may have signed tokens in use; remove it to start over)", "token", "--init-dev-key", dir) // never replaces a key

	tok := strings.TrimSpace(mustCLI(t, "token", "--dev-key", keyPath, "--jwt-issuer", "demo", "--jwt-audience", "mandate,other",
		"--sub", "alice", "--act", "bob", "--act", "agent:assistant", "--scope", "read:accounts,read:transactions",
		"--ttl", "10m", "--claim", "device=laptop-7", "--claim", "risk=2", "--claim", "mfa=true"))

	v, err := identity.NewVerifier(identity.Config{Issuer: "demo", Audiences: []string{"mandate"}, JWKSFile: jwksPath, AllowDevKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	id, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("verify minted token: %v", err)
	}
	wantActors := []policy.Actor{{ID: "bob", Kind: policy.ActorDelegate}, {ID: "assistant", Kind: policy.ActorAgent}}
	if id.Subject != "alice" || !reflect.DeepEqual(id.Actors, wantActors) {
		t.Errorf("token says sub %q acting %v, want alice acting %v", id.Subject, id.Actors, wantActors)
	}
	if !reflect.DeepEqual(id.Scopes, []string{"read:accounts", "read:transactions"}) {
		t.Errorf("scopes %v", id.Scopes)
	}
	if id.Claims["device"] != "laptop-7" || id.Claims["risk"] != 2.0 || id.Claims["mfa"] != true {
		t.Errorf("claims %v", id.Claims)
	}
	if left := time.Until(id.ExpiresAt); left <= 9*time.Minute || left > 10*time.Minute {
		t.Errorf("token expires in %v, want --ttl 10m", left)
	}
	if aud, _ := id.Claims["aud"].([]any); len(aud) != 1 || aud[0] != "mandate" {
		t.Errorf("aud %v, want only the first --jwt-audience", id.Claims["aud"])
	}

	// The key and defaults come from the config too.
	cfgPath := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(cfgPath, []byte("dev_key: "+keyPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(mustCLI(t, "token", "--config", cfgPath, "--sub", "dana"))
	v2, err := identity.NewVerifier(identity.Config{Issuer: "mandate-dev", Audiences: []string{"mandate"}, JWKSFile: jwksPath, AllowDevKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if id, err := v2.Verify(tok); err != nil || id.Subject != "dana" || len(id.Actors) != 0 {
		t.Errorf("token from config: %+v, %v", id, err)
	}
}

func TestTokenErrors(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, "token", "--init-dev-key", dir)
	devKey := filepath.Join(dir, identity.DevKeyFile)

	// A perfectly good Ed25519 key without the development marker.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	realKey := filepath.Join(dir, "real.pem")
	if err := os.WriteFile(realKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dev-key", realKey, "--sub", "alice"}, "--dev-key " + realKey + ": identity: not a development key"},
		{[]string{"--dev-key", devKey}, "--sub is required"},
		{[]string{"--sub", "alice"}, "no development key: set --dev-key"},
		{[]string{"--dev-key", devKey, "--sub", "alice", "--act", "agent:"}, `--act "agent:": empty identifier`},
		{[]string{"--dev-key", devKey, "--sub", "alice", "--claim", "sub=mallory"}, `extra claim "sub" would replace a minted claim`},
		{[]string{"--dev-key", devKey, "--sub", "alice", "--claim", "nokey"}, "want KEY=VALUE"},
		{[]string{"--dev-key", devKey, "--sub", "alice", "--ttl", "-1h"}, "--ttl -1h0m0s: want a positive duration"},
		{[]string{"--dev-key", devKey, "--sub", "alice", "--ttl", "soon"}, `invalid value "soon" for flag -ttl`},
	} {
		failCLI(t, tc.want, append([]string{"token"}, tc.args...)...)
	}
}
