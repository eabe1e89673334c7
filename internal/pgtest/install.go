package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// binGlob is where Debian and Ubuntu packages install the server binaries.
const binGlob = "/usr/lib/postgresql/*/bin"

// installation is the set of PostgreSQL server binaries clusters run, and the
// system user they run as.
type installation struct {
	binDir  string
	version string // full `postgres -V` output, part of the template stamp
	major   string // "15", or "9.6" for old versions
	// runAs is the user servers run as when we are root (postgres refuses
	// root); nil means servers run as the current user.
	runAs *syscall.Credential
}

var (
	installOnce sync.Once
	installed   *installation
	installErr  error
)

// findInstallation locates the binaries once per process.
func findInstallation() (*installation, error) {
	installOnce.Do(func() { installed, installErr = detectInstallation() })
	return installed, installErr
}

func detectInstallation() (*installation, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	in := &installation{binDir: binDir}
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "-V").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s/postgres -V: %v: %s", binDir, err, out)
	}
	in.version = strings.TrimSpace(string(out))
	if in.major, err = majorVersion(in.version); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root, which PostgreSQL refuses, and there is no \"postgres\" system user to run it as: %v", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("pgtest: user postgres: %v", err)
		}
		in.runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return in, nil
}

// findBinDir returns MANDATE_PG_BIN if set, else the highest version under binGlob.
func findBinDir() (string, error) {
	if dir := os.Getenv("MANDATE_PG_BIN"); dir != "" {
		if !hasServer(dir) {
			return "", fmt.Errorf("pgtest: MANDATE_PG_BIN=%s does not contain the postgres and initdb binaries", dir)
		}
		return filepath.Abs(dir) // commands run in the cluster directory
	}
	dirs, _ := filepath.Glob(binGlob)
	best, bestVersion := "", []int(nil)
	for _, dir := range dirs {
		if !hasServer(dir) {
			continue
		}
		v := parseVersion(filepath.Base(filepath.Dir(dir)))
		if best == "" || slices.Compare(v, bestVersion) > 0 {
			best, bestVersion = dir, v
		}
	}
	if best == "" {
		return "", fmt.Errorf("pgtest: PostgreSQL server binaries not found in %s (apt-get install -y postgresql), or set MANDATE_PG_BIN to their directory", binGlob)
	}
	return best, nil
}

func hasServer(dir string) bool {
	for _, name := range []string{"postgres", "initdb"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// parseVersion turns "9.6" into [9 6]; non-numeric parts sort first.
func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			n = -1
		}
		v = append(v, n)
	}
	return v
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

func majorVersion(versionOutput string) (string, error) {
	m := versionRE.FindStringSubmatch(versionOutput)
	if m == nil {
		return "", fmt.Errorf("pgtest: cannot parse PostgreSQL version from %q", versionOutput)
	}
	if n, _ := strconv.Atoi(m[1]); n < 10 && m[2] != "" {
		return m[1] + "." + m[2], nil
	}
	return m[1], nil
}

// command prepares a server binary to run as the server user, in its own
// process group (so a last-resort kill reaches its children) and with a
// parent death signal, so no server outlives a crashed or timed-out test.
// SIGQUIT makes postgres do an immediate shutdown of all its children.
// (Linux sends it when the thread that started the server exits; Go only
// ends threads whose goroutine exits while locked with runtime.LockOSThread.)
func (in *installation) command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(in.binDir, name), args...)
	cmd.Dir = dir // the server user may not be able to enter our working directory
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGQUIT,
		Credential: in.runAs,
	}
	return cmd
}

// serverEnv is our environment without PG* variables, which the server tools
// would otherwise pick up (PGDATA, PGPORT, ...).
func serverEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// own gives paths to the server user; a no-op unless we run as root.
func (in *installation) own(paths ...string) error {
	if in.runAs == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, int(in.runAs.Uid), int(in.runAs.Gid)); err != nil {
			return fmt.Errorf("pgtest: giving %s to the postgres user: %w", p, err)
		}
	}
	return nil
}

// uid is the user the server files belong to.
func (in *installation) uid() int {
	if in.runAs != nil {
		return int(in.runAs.Uid)
	}
	return os.Getuid()
}
