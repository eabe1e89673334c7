package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// benchRole owns the benchmark database. It is not a superuser, because
// mandate refuses to relay through one.
const benchRole = "bench"

// env is the PostgreSQL side every target shares.
type env struct {
	cluster  *pgtest.Cluster
	dir      string // scratch directory for configs and logs, removed on exit
	password string // benchRole's
}

// setupPostgres starts a throwaway cluster, creates benchRole and its
// database and fills it with pgbench -i.
func setupPostgres(ctx context.Context, scale int, cleanups *cleanupStack) (*env, error) {
	dir, err := os.MkdirTemp("", "mandate-bench-")
	if err != nil {
		return nil, err
	}
	cleanups.add(func() error { return os.RemoveAll(dir) })
	// Helpers running as the postgres user (pgbouncer) must reach their files.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}

	fmt.Println("starting PostgreSQL")
	cluster, err := pgtest.New(pgtest.Options{MaxConnections: 200})
	if err != nil {
		return nil, err
	}
	cleanups.add(cluster.Stop)
	e := &env{cluster: cluster, dir: dir, password: rand.Text()}

	for _, sql := range []string{ // CREATE DATABASE cannot share a transaction
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, benchRole, e.password),
		fmt.Sprintf(`CREATE DATABASE %[1]s OWNER %[1]s`, benchRole),
	} {
		if err := cluster.ExecContext(ctx, sql); err != nil {
			return nil, err
		}
	}
	fmt.Printf("pgbench -i -s %d\n", scale)
	if out, err := e.pgbench(ctx, e.direct(), "-i", "-q", "-s", strconv.Itoa(scale)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	return e, nil
}

// direct is the cluster itself as a target, over TCP like the proxies.
func (e *env) direct() *target {
	return &target{name: "direct", port: e.cluster.Port(), password: e.password, stop: func() error { return nil }}
}

// pgbench prepares a pgbench of the server's version against t as benchRole.
func (e *env) pgbench(ctx context.Context, t *target, args ...string) *exec.Cmd {
	args = append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(t.port), "-U", benchRole, benchRole)
	cmd := exec.CommandContext(ctx, filepath.Join(e.cluster.BinDir(), "pgbench"), args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	cmd.Env = append(cmd.Env, "PGSSLMODE=disable", "PGPASSWORD="+t.password)
	return cmd
}
