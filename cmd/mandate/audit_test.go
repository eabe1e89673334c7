package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-proxy/mandate/audit"
)

func TestAuditVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"alice", "bob", "dana"} {
		if err := w.Write(audit.Record{Time: time.Now(), Session: "s1", Subject: subject, Fingerprint: "f", Decision: audit.DecisionAllow}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "audit", "verify", path); out != path+": 3 records, chain intact\n" {
		t.Errorf("audit verify printed %q", out)
	}
	cfgPath := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(cfgPath, []byte("audit_log: "+path+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "audit", "verify", "--config", cfgPath); out != path+": 3 records, chain intact\n" {
		t.Errorf("audit verify --config printed %q", out)
	}

	// Rewrite history: line 3 (the second record) now names someone else.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(data, []byte(`"subject":"bob"`), []byte(`"subject":"eve"`), 1)
	if bytes.Equal(tampered, data) {
		t.Fatal("test log has no bob record")
	}
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	failCLI(t, path+": audit log line 3: hash mismatch", "audit", "verify", path)

	failCLI(t, "missing audit log FILE", "audit", "verify")
	failCLI(t, "no such file or directory", "audit", "verify", filepath.Join(t.TempDir(), "none"))
	failCLI(t, `unknown subcommand "check": want verify`, "audit", "check", path)
}
