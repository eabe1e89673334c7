package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mandate-proxy/mandate/policy/store"
)

// runMigrate applies the policy store's embedded migrations. It is safe to
// run while proxies are up and from several hosts at once: the store
// serialises migrations with an advisory lock and applies each once.
func runMigrate(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := parseCommand("migrate", "mandate migrate [--config mandate.yaml] [--store URL]\n\n"+
		"Creates or upgrades the policy store's schema (mandate) and prints the versions applied.",
		0, args, stdout, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	conn, err := connectStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	applied, err := store.Migrate(ctx, conn)
	// Report what was applied even when a later migration failed: those
	// committed, each in its own transaction.
	for _, v := range applied {
		fmt.Fprintf(stdout, "applied migration %04d\n", v)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "policy store schema is up to date")
	}
	return nil
}
