package pgtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure a cluster. The zero value is a plain cluster without TLS.
type Options struct {
	// SSL enables TLS with a self-signed certificate generated for this
	// cluster (see Cluster.CertFile); TCPDSN then asks for sslmode=require.
	SSL bool
	// MaxConnections defaults to 300, enough for load tests.
	MaxConnections int
	// Settings are extra postgresql.conf parameters (name → value, unquoted).
	// They are applied last, so they override the harness's own settings;
	// leave port, listen_addresses and unix_socket_directories alone.
	Settings map[string]string
}

const (
	defaultMaxConnections = 300
	startTimeout          = 60 * time.Second // generous: CI machines are shared
	stopTimeout           = 30 * time.Second
	portAttempts          = 3
)

// Cluster is one running postgres server with its own directories and port.
// Its methods are safe for concurrent use.
type Cluster struct {
	install *installation
	opts    Options
	port    int
	dir     string // everything below is inside dir, which Stop removes
	dataDir string
	sockDir string
	logPath string

	mu      sync.Mutex
	proc    *exec.Cmd     // nil when not running
	exited  chan struct{} // closed when proc has been reaped
	removed bool
}

// Start starts a cluster and registers its Stop with tb.Cleanup. Any error
// fails tb; if tb fails later, the tail of the server log is logged.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	c, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pgtest: tail of %s:\n%s", c.logPath, c.logTail(0))
		}
		if err := c.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// New starts a cluster outside of a test; the caller must call Stop.
func New(opts Options) (*Cluster, error) {
	in, err := findInstallation()
	if err != nil {
		return nil, err
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = defaultMaxConnections
	}
	dir, err := os.MkdirTemp(baseDir(), "mandate-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{
		install: in,
		opts:    opts,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		sockDir: filepath.Join(dir, "sock"),
		logPath: filepath.Join(dir, "postgres.log"),
	}
	if err := c.prepare(); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err == nil {
			if err = c.writeConfig(); err == nil {
				err = c.start()
			}
		}
		if err == nil {
			return c, nil
		}
		// Another process may take the port between our probe and the
		// server's bind; a fresh port fixes that.
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return nil, errors.Join(err, c.Stop())
		}
	}
}

// baseDir holds templates and clusters: $MANDATE_PGTEST_DIR (e.g. a tmpfs
// such as /dev/shm, where copying the template is several times faster than
// on a journaling disk) or os.TempDir().
func baseDir() string {
	if dir := os.Getenv("MANDATE_PGTEST_DIR"); dir != "" {
		return dir
	}
	return os.TempDir()
}

// maxSocketPath is the room in sockaddr_un.sun_path, minus its NUL.
const maxSocketPath = 107

// prepare lays out the cluster directory: a copy of the template, the
// socket directory, the HBA file and, with SSL, the certificate.
func (c *Cluster) prepare() error {
	if socket := filepath.Join(c.sockDir, ".s.PGSQL.65535"); len(socket) > maxSocketPath {
		return fmt.Errorf("pgtest: socket path %s is longer than %d bytes; set MANDATE_PGTEST_DIR to a shorter directory", socket, maxSocketPath)
	}
	if err := os.Mkdir(c.sockDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := c.install.own(c.dir, c.sockDir); err != nil {
		return err
	}
	if err := c.install.copyTemplate(c.dataDir); err != nil {
		return err
	}
	if err := c.includeConfig(); err != nil {
		return err
	}
	if err := c.writeHBA(nil); err != nil {
		return err
	}
	if c.opts.SSL {
		return c.writeCertificate()
	}
	return nil
}

var errPortInUse = errors.New("port in use")

// start runs postgres and waits until it accepts connections. The caller
// holds c.mu or owns c exclusively.
func (c *Cluster) start() error {
	logFile, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	cmd := c.install.command(c.dir, "postgres", "-D", c.dataDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.proc, c.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	for !c.ready() {
		select {
		case <-exited:
			c.proc = nil
			log := c.logTail(logStart)
			err := fmt.Errorf("pgtest: postgres exited during startup (%v); log %s:\n%s", cmd.ProcessState, c.logPath, log)
			if strings.Contains(log, "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.Join(
				fmt.Errorf("pgtest: postgres not ready after %v; log %s:\n%s", startTimeout, c.logPath, c.logTail(logStart)),
				c.shutdown(syscall.SIGQUIT))
		}
	}
	return nil
}

// ready reports whether the postmaster we started has written "ready" into
// postmaster.pid, which is what pg_ctl -w waits for.
func (c *Cluster) ready() bool {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) >= 8 &&
		lines[0] == strconv.Itoa(c.proc.Process.Pid) &&
		strings.TrimSpace(lines[7]) == "ready"
}

// shutdown stops the server with sig (SIGINT: fast, SIGQUIT: immediate) and
// escalates to SIGKILL of the whole process group if it does not exit.
// The caller holds c.mu or owns c exclusively.
func (c *Cluster) shutdown(sig syscall.Signal) error {
	if c.proc == nil {
		return nil
	}
	proc := c.proc.Process
	c.proc = nil
	// Process.Signal uses a pidfd, so a server that already exited on its
	// own cannot make us signal an unrelated process that reused its pid.
	if err := proc.Signal(sig); errors.Is(err, os.ErrProcessDone) {
		<-c.exited
		return nil
	}
	pid := proc.Pid
	select {
	case <-c.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-c.exited
	return fmt.Errorf("pgtest: postgres (pid %d) ignored %v for %v and was killed; log %s:\n%s",
		pid, sig, stopTimeout, c.logPath, c.logTail(0))
}

// Stop shuts the server down and removes all its directories. It is
// idempotent; Start calls it through tb.Cleanup.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	// Immediate shutdown: the data is about to be deleted, so the shutdown
	// checkpoint of a fast shutdown would be wasted time.
	err := c.shutdown(syscall.SIGQUIT)
	c.removed = true
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: %w", rmErr))
	}
	return err
}

// Restart stops the server in fast mode, if it runs, and starts it again on
// the same port with the same data, e.g. to test upstream reconnection.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return errors.New("pgtest: Restart after Stop")
	}
	if err := c.shutdown(syscall.SIGINT); err != nil {
		return err
	}
	return c.start()
}

// Kill stops the server in immediate mode: connections drop without a
// goodbye, as in a crash, and recent commits may be lost (durability is off).
// Restart brings the server back through crash recovery.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shutdown(syscall.SIGQUIT)
}

// Host is the unix socket directory, usable as a libpq/pgx host.
func (c *Cluster) Host() string { return c.sockDir }

// Port is the TCP port on 127.0.0.1; the unix socket uses the same number.
func (c *Cluster) Port() int { return c.port }

// BinDir holds the server's binaries, so tests can run psql or pgbench of
// the same version.
func (c *Cluster) BinDir() string { return c.install.binDir }

// LogFile is the server log, kept until Stop.
func (c *Cluster) LogFile() string { return c.logPath }

// DSN is a URL for user on database db over the unix socket.
func (c *Cluster) DSN(user, db string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(user),
		Path:   "/" + db,
		RawQuery: url.Values{
			"host":    {c.sockDir},
			"port":    {strconv.Itoa(c.port)},
			"sslmode": {"disable"},
		}.Encode(),
	}
	return u.String()
}

// TCPDSN is a URL for user on database db over TCP to 127.0.0.1, with
// sslmode=require when the cluster has SSL and disable otherwise. An empty
// password is left out of the URL.
func (c *Cluster) TCPDSN(user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	if c.opts.SSL {
		u.RawQuery = "sslmode=require"
	}
	return u.String()
}

// logTail returns up to the last 4 KiB of the server log from offset on.
func (c *Cluster) logTail(offset int64) string {
	const max = 4 << 10
	f, err := os.Open(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if end, err := f.Seek(0, io.SeekEnd); err == nil && end-offset > max {
		offset = end - max
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "(log: " + err.Error() + ")"
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// freePort asks the kernel for an unused port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
