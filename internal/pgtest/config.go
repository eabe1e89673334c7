package pgtest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// confFile holds the harness settings; postgresql.conf includes it at the
// end, and ALTER SYSTEM (postgresql.auto.conf) still overrides it.
const confFile = "mandate-pgtest.conf"

// defaultHBA comes after any lines given to SetHBA: the superuser and tests
// connect over the socket without a password, TCP clients need SCRAM.
var defaultHBA = []string{
	"local all all trust",
	"host all all 127.0.0.1/32 scram-sha-256",
	"host all all ::1/128 scram-sha-256",
}

func (c *Cluster) includeConfig() error {
	path := filepath.Join(c.dataDir, "postgresql.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = fmt.Fprintf(f, "\ninclude '%s'\n", confFile)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// writeConfig writes the settings for the current port. Durability is off:
// a test cluster is thrown away, and fsync costs seconds on shared CI disks.
func (c *Cluster) writeConfig() error {
	settings := map[string]string{
		"port":                    strconv.Itoa(c.port),
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.sockDir,
		"max_connections":         strconv.Itoa(c.opts.MaxConnections),
		"shared_buffers":          "32MB",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"jit":                     "off", // JIT compile time makes benchmarks noisy
	}
	if c.opts.SSL {
		settings["ssl"] = "on"
		settings["ssl_cert_file"] = certFile
		settings["ssl_key_file"] = keyFile
	}
	maps.Copy(settings, c.opts.Settings)
	var b strings.Builder
	b.WriteString("# written by mandate internal/pgtest\n")
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		if !settingName.MatchString(name) {
			return fmt.Errorf("pgtest: invalid setting name %q", name)
		}
		fmt.Fprintf(&b, "%s = %s\n", name, quoteConf(settings[name]))
	}
	return c.writeDataFile(confFile, b.String())
}

// quoteConf quotes a value for postgresql.conf; quoted values are accepted
// for every parameter type.
func quoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, "'", "''")
	v = strings.ReplaceAll(v, "\n", `\n`)
	return "'" + v + "'"
}

// writeDataFile writes a file into the data directory, private to the
// server user (postgres insists on that for the key file).
func (c *Cluster) writeDataFile(name, content string) error {
	path := filepath.Join(c.dataDir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return c.install.own(path)
}

func (c *Cluster) writeHBA(lines []string) error {
	content := "# written by mandate internal/pgtest\n" +
		strings.Join(append(slices.Clone(lines), defaultHBA...), "\n") + "\n"
	return c.writeDataFile("pg_hba.conf", content)
}

// SetHBA replaces the pg_hba.conf lines placed before the defaults (local
// trust, SCRAM over TCP) and reloads the server; it returns once new
// connections see the new rules. Lines apply in order, so
//
//	c.SetHBA([]string{"host all md5user 127.0.0.1/32 md5"})
//
// switches one role to md5 while others keep SCRAM. A nil slice restores the
// defaults. Invalid lines are rejected and the previous file kept. The
// lines must leave the postgres superuser its local trust access, which the
// harness itself uses.
func (c *Cluster) SetHBA(lines []string) error {
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			return fmt.Errorf("pgtest: HBA line %q contains a line break", l)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, c.DSN("postgres", "postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: SetHBA: %w", err)
	}
	defer conn.Close(context.Background())

	hbaPath := filepath.Join(c.dataDir, "pg_hba.conf")
	previous, err := os.ReadFile(hbaPath)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := c.writeHBA(lines); err != nil {
		return err
	}
	// pg_hba_file_rules parses the file on disk, so errors show before reload.
	bad, err := queryStrings(ctx, conn,
		`SELECT 'line ' || line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL`)
	if err == nil && len(bad) > 0 {
		err = fmt.Errorf("pgtest: SetHBA: invalid pg_hba.conf: %s", strings.Join(bad, "; "))
	}
	if err != nil {
		return errorsJoinRestore(err, c.writeDataFile("pg_hba.conf", string(previous)))
	}

	before, err := queryStrings(ctx, conn, `SELECT pg_conf_load_time()::text FROM pg_reload_conf()`)
	if err != nil {
		return fmt.Errorf("pgtest: SetHBA: reload: %w", err)
	}
	// The postmaster reloads asynchronously; a backend forked after the
	// reload inherits the new load time, and with it the new rules.
	for {
		after, err := loadTime(ctx, c.DSN("postgres", "postgres"))
		if err == nil && after != before[0] {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: SetHBA: server did not reload: %v (last error: %v)", ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func errorsJoinRestore(err, restoreErr error) error {
	if restoreErr != nil {
		return fmt.Errorf("%w (and restoring the previous pg_hba.conf failed: %v)", err, restoreErr)
	}
	return err
}

func loadTime(ctx context.Context, dsn string) (string, error) {
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	rows, err := queryStrings(ctx, conn, `SELECT pg_conf_load_time()::text`)
	if err != nil {
		return "", err
	}
	return rows[0], nil
}

// queryStrings runs sql and returns the first column of each row.
func queryStrings(ctx context.Context, conn *pgconn.PgConn, sql string) ([]string, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range results {
		for _, row := range r.Rows {
			out = append(out, string(row[0]))
		}
	}
	return out, nil
}
