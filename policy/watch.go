package policy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Watch polls the sources every interval and reloads when any file was
// added, removed or changed (size or modification time), until ctx is done.
// onReload, if not nil, receives the outcome of each reload: nil, or the
// error for which the previous snapshot was kept. A rejected file is not
// retried until it changes again.
func (e *Engine) Watch(ctx context.Context, interval time.Duration, onReload func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.reloadMu.Lock()
		changed := e.src.stamp() != e.stamp
		e.reloadMu.Unlock()
		if !changed {
			continue
		}
		err := e.Reload()
		if onReload != nil {
			onReload(err)
		}
	}
}

// stamp summarises the sources' file metadata: it changes when a reload may
// give a different snapshot.
func (src Sources) stamp() string {
	files, _ := filepath.Glob(filepath.Join(src.PolicyDir, "*.cedar"))
	slices.Sort(files)
	files = append(files, src.Schema, src.Entities, src.Masks)
	var b strings.Builder
	for _, f := range files {
		if f == "" {
			continue
		}
		b.WriteString(f)
		if fi, err := os.Stat(f); err == nil {
			b.WriteString(" " + strconv.FormatInt(fi.Size(), 10) + " " + strconv.FormatInt(fi.ModTime().UnixNano(), 10))
		}
		b.WriteString("\n")
	}
	return b.String()
}
