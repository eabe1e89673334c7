package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// stampFile, inside the template data directory, records which binaries
// made it; a template with another stamp is rebuilt.
const stampFile = "mandate-pgtest.stamp"

// templateDir is shared by all test packages and runs of one user and one
// major version. The uid in the name is the test runner's, so users never
// fight over (or trust) each other's template.
func (in *installation) templateDir() string {
	return filepath.Join(baseDir(), "mandate-pgtest-template-"+in.major+"-"+strconv.Itoa(os.Getuid()))
}

func (in *installation) stamp() []byte {
	return []byte("binaries: " + in.binDir + "\nversion: " + in.version + "\n")
}

func (in *installation) templateValid() bool {
	got, err := os.ReadFile(filepath.Join(in.templateDir(), stampFile))
	if err != nil || !bytes.Equal(got, in.stamp()) {
		return false
	}
	var st syscall.Stat_t
	return syscall.Stat(in.templateDir(), &st) == nil && int(st.Uid) == in.uid()
}

// copyTemplate copies the template data directory to dst, running initdb
// first if no valid template exists. Copies hold a shared lock and builds an
// exclusive one, so parallel test binaries never see a half-built template.
func (in *installation) copyTemplate(dst string) error {
	lockPath := in.templateDir() + ".lock"
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: template lock: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := flock(lock, syscall.LOCK_SH); err != nil {
		return err
	}
	if !in.templateValid() {
		if err := flock(lock, syscall.LOCK_EX); err != nil {
			return err
		}
		if !in.templateValid() {
			if err := in.buildTemplate(); err != nil {
				return err
			}
		}
		if err := flock(lock, syscall.LOCK_SH); err != nil {
			return err
		}
	}
	// cp -a keeps modes and, as root, the postgres ownership; it is faster
	// than a Go walk for the ~1000 small files of a fresh cluster.
	if out, err := exec.Command("cp", "-a", in.templateDir(), dst).CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: copying template %s: %v: %s", in.templateDir(), err, out)
	}
	return nil
}

// buildTemplate runs initdb; the caller holds the exclusive lock. It builds
// next to the template and renames, so a crash never leaves a stamped but
// incomplete template.
func (in *installation) buildTemplate() error {
	tpl := in.templateDir()
	stale, _ := filepath.Glob(tpl + ".build-*") // left by builders that were killed
	for _, dir := range append(stale, tpl) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("pgtest: removing stale template: %w", err)
		}
	}
	build, err := os.MkdirTemp(filepath.Dir(tpl), filepath.Base(tpl)+".build-")
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer os.RemoveAll(build)
	if err := in.own(build); err != nil {
		return err
	}
	data := filepath.Join(build, "data")
	cmd := in.command(build, "initdb", "-D", data,
		"-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb (%s) failed: %v\n%s", in.binDir, err, out)
	}
	stamp := filepath.Join(data, stampFile)
	if err := os.WriteFile(stamp, in.stamp(), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := in.own(stamp); err != nil {
		return err
	}
	if err := os.Rename(data, tpl); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return fmt.Errorf("pgtest: locking %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}
