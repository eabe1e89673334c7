package main

import (
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

func TestMigrate(t *testing.T) {
	dsn := pgtest.Start(t, pgtest.Options{}).DSN("postgres", "postgres")

	// Before migrating, every state command says what to do.
	failCLI(t, "run mandate migrate", "delegate", "list", "--store", dsn)
	failCLI(t, "run mandate migrate", "consent", "grant", "--store", dsn, "--subject", "dana", "--purpose", "x")

	// 0001 is the state schema, 0002 the mask helpers; later ones follow.
	if out := mustCLI(t, "migrate", "--store", dsn); !strings.HasPrefix(out, "applied migration 0001\napplied migration 0002\n") {
		t.Errorf("first migrate printed %q", out)
	}
	// --upstream stands in for --store.
	if out := mustCLI(t, "migrate", "--upstream", dsn); out != "policy store schema is up to date\n" {
		t.Errorf("second migrate printed %q", out)
	}
	if out := mustCLI(t, "delegate", "list", "--store", dsn); out == "" {
		t.Error("delegate list on a migrated, empty store printed nothing; want the header")
	}
	failCLI(t, `unexpected argument "now"`, "migrate", "now")
}
