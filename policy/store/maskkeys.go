package store

import (
	"context"
	"crypto/rand"
	"fmt"
)

// EnsureMaskKeys gives every hash-mask key name a random 32-byte key in
// mandate.mask_keys unless it has one. Keys never leave the database: the
// rewriter names them, the mask functions read them, and a key once made is
// kept (changing it would change every hashed value, breaking joins over
// time).
func EnsureMaskKeys(ctx context.Context, db DB, names []string) error {
	for _, name := range names {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if _, err := db.Exec(ctx, "INSERT INTO mandate.mask_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, key); err != nil {
			return fmt.Errorf("mask key %q: %w", name, err)
		}
	}
	return nil
}
