package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// target is an address pgbench connects to as benchRole.
type target struct {
	name     string
	port     int
	password string       // empty when the target trusts loopback clients
	stop     func() error // stops what serves the target, if we started it
}

// starters start each kind of target. A further configuration (e.g. mandate
// with a row filter and a mask) is one more entry, with its own name.
var starters = map[string]func(context.Context, *env, config) (*target, error){
	"direct": func(_ context.Context, e *env, _ config) (*target, error) { return e.direct(), nil },
	"mandate": func(ctx context.Context, e *env, cfg config) (*target, error) {
		return startMandate(ctx, e, "mandate", cfg.mandateBin, []string{"--transparent"}, cfg.mandateArgs)
	},
	// mandate enforcing testdata/pgbench's policies: a row filter (branch 1)
	// and a mask (abalance rounded) on every pgbench -S statement.
	"mandate-protected": func(ctx context.Context, e *env, cfg config) (*target, error) {
		return startMandate(ctx, e, "mandate-protected", cfg.mandateBin, protectedArgs(), cfg.mandateArgs)
	},
	"pgbouncer": startPgbouncer,
}

// protectedArgs are mandate's flags for testdata/pgbench's policies.
func protectedArgs() []string {
	dir := filepath.Join("testdata", "pgbench")
	return []string{
		"--policy-dir", filepath.Join(dir, "policies"), "--cedar-schema", filepath.Join(dir, "schema.cedarschema"),
		"--entities", filepath.Join(dir, "entities.json"), "--masks", filepath.Join(dir, "masks.yaml"),
	}
}

// startMandate runs mandate in front of the cluster in the given mode
// (--transparent, or the policy flags); extraArgs come last, so they
// override the defaults.
func startMandate(ctx context.Context, e *env, name, bin string, mode, extraArgs []string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	upstream := e.cluster.TCPDSN(benchRole, e.password, benchRole)
	args := append(append([]string{"serve"}, mode...),
		"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"--upstream", upstream, "--admin-listen", "", "--auth", "trust",
		"--log-level", "warn", "--shutdown-timeout", "5s",
		// Keep as many warm upstream connections as pgbouncer's pool below.
		"--upstream-pool-size", "100")
	cmd := exec.Command(bin, append(args, extraArgs...)...)
	return startTarget(ctx, name, cmd, filepath.Join(e.dir, name+".log"), port)
}

const pgbouncerBin = "/usr/sbin/pgbouncer"

// startPgbouncer runs pgbouncer in session pool mode with a generated config.
// Clients are trusted; pgbouncer logs in upstream with the password from its
// auth_file. pgbouncer refuses to run as root, so as root it runs as the
// postgres user, which then owns its files.
func startPgbouncer(ctx context.Context, e *env, _ config) (*target, error) {
	if _, err := os.Stat(pgbouncerBin); err != nil {
		return nil, fmt.Errorf("%s not found; install it with: apt-get install -y pgbouncer", pgbouncerBin)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, "pgbouncer")
	userlist := filepath.Join(dir, "userlist.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	files := map[string]string{
		userlist: fmt.Sprintf("%q %q\n", benchRole, e.password),
		ini: fmt.Sprintf(`[databases]
%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s user=%[1]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir =
auth_type = trust
auth_file = %[4]s
pool_mode = session
default_pool_size = 100
max_client_conn = 200
logfile = %[5]s
`, benchRole, e.cluster.Port(), port, userlist, filepath.Join(dir, "pgbouncer.log")),
	}
	cred, err := nonRootCredential()
	if err != nil {
		return nil, err
	}
	if err := writePrivateFiles(dir, files, cred); err != nil {
		return nil, err
	}
	cmd := exec.Command(pgbouncerBin, "-q", ini)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return startTarget(ctx, "pgbouncer", cmd, filepath.Join(dir, "stderr.log"), port)
}

// nonRootCredential is the postgres user's when we run as root, else nil.
func nonRootCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and there is no postgres user to run pgbouncer as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// writePrivateFiles creates dir and files in it, readable only by their
// owner, which is cred's user when cred is set.
func writePrivateFiles(dir string, files map[string]string, cred *syscall.Credential) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	paths := []string{dir}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return err
		}
		paths = append(paths, path)
	}
	if cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// startTarget starts cmd, logging to logPath, and returns once a client can
// run a query through port, or stops cmd again if none can.
func startTarget(ctx context.Context, name string, cmd *exec.Cmd, logPath string, port int) (*target, error) {
	fmt.Println("starting", name)
	p, err := startProcess(cmd, logPath)
	if err != nil {
		return nil, err
	}
	t := &target{name: name, port: port, stop: p.stop}
	if err := waitReady(ctx, p, t); err != nil {
		return nil, errors.Join(fmt.Errorf("%w; log %s:\n%s", err, logPath, readTail(logPath)), p.stop())
	}
	return t, nil
}

const readyTimeout = 20 * time.Second

// waitReady polls until benchRole can run a query through t.
func waitReady(ctx context.Context, p *process, t *target) error {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(benchRole, t.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(t.port)),
		Path:     "/" + benchRole,
		RawQuery: "sslmode=disable&connect_timeout=2",
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		conn, err := pgconn.Connect(ctx, u.String())
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %v: %w", t.name, readyTimeout, err)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v", t.name, p.cmd.ProcessState)
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePort asks the kernel for an unused port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
