package audit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Writer.
type Options struct {
	// Now stamps the genesis line and records whose Time is zero; nil means
	// time.Now.
	Now func() time.Time
	// FlushInterval zero (the default) hands every record to the OS before
	// Write returns. A positive interval buffers records and flushes them at
	// most that long after they were written.
	FlushInterval time.Duration
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit: writer closed")

// Writer appends records to a chained log. It is safe for concurrent use;
// records are chained in the order their Write calls take the lock.
type Writer struct {
	now      func() time.Time
	interval time.Duration

	mu     sync.Mutex
	out    *bufio.Writer
	file   *os.File // nil when writing to a stream such as stdout
	body   []byte   // reused buffers: the hashed body and the sealed line
	line   []byte
	seq    uint64
	head   string      // hash of the last line written
	err    error       // sticky: after a failed write the chain position is unknown
	failed atomic.Bool // err is set: Err need not take the lock (it runs per statement)
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

const bufferSize = 64 << 10

// NewWriter starts a new log on w (stdout, a pipe, a socket): it writes the
// genesis line now. Close flushes but does not close w.
func NewWriter(w io.Writer, opts Options) (*Writer, error) {
	aw := newWriter(w, nil, opts)
	if err := aw.writeGenesis(); err != nil {
		return nil, err
	}
	aw.start()
	return aw, nil
}

// Open appends to the log at path, creating it (mode 0600) with a genesis
// line if it is missing or empty. An existing log is continued from its last
// line, which must be complete and intact; the rest of the file is not
// re-read (use Verify). The file is locked against a second writer, whose
// records would fork the chain.
func Open(path string, opts Options) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s is in use by another writer: %w", path, err)
	}
	aw := newWriter(f, f, opts)
	seq, head, err := lastLine(f)
	switch {
	case errors.Is(err, io.EOF):
		err = aw.writeGenesis()
	case err == nil:
		aw.seq, aw.head = seq, head
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	aw.start()
	return aw, nil
}

func newWriter(w io.Writer, f *os.File, opts Options) *Writer {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Writer{
		now:      now,
		interval: opts.FlushInterval,
		out:      bufio.NewWriterSize(w, bufferSize),
		file:     f,
		body:     make([]byte, 0, 1024),
		line:     make([]byte, 0, 1024),
		done:     make(chan struct{}),
	}
}

func (w *Writer) start() {
	if w.interval <= 0 {
		return
	}
	w.wg.Go(func() {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				w.mu.Lock()
				if w.err == nil && w.out.Buffered() > 0 {
					w.setErr(w.out.Flush())
				}
				w.mu.Unlock()
			}
		}
	})
}

func (w *Writer) writeGenesis() error {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	body, err := json.Marshal(genesis{
		Format:  Format,
		LogID:   hex.EncodeToString(id),
		Started: w.now().UTC().Format(time.RFC3339Nano),
		Prev:    genesisPrev,
	})
	if err != nil {
		return err
	}
	line, hash := seal(nil, body)
	if _, err := w.out.Write(line); err != nil {
		return err
	}
	if err := w.out.Flush(); err != nil {
		return err
	}
	w.seq, w.head = 0, hash
	return nil
}

// Write appends r to the log, setting its Seq, Prev and Hash (r is a copy;
// the caller's value is unchanged). An error means the log can no longer be
// trusted to be complete; the proxy decides whether to stop serving.
func (w *Writer) Write(r Record) error {
	if err := r.validate(); err != nil {
		return err
	}
	if r.Time.IsZero() {
		r.Time = w.now()
	}
	r.Time = r.Time.UTC()
	r.Seq, r.Prev, r.Hash = 0, "", ""
	// Encode outside the lock; only chaining is serialized.
	fields, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	seq := w.seq + 1
	body := append(w.body[:0], `{"seq":`...)
	body = strconv.AppendUint(body, seq, 10)
	body = append(body, `,"prev":"`...)
	body = append(body, w.head...)
	body = append(body, `",`...)
	body = append(body, fields[1:]...)
	line, hash := seal(w.line[:0], body)
	w.body, w.line = body, line

	if _, err := w.out.Write(line); err != nil {
		w.setErr(fmt.Errorf("audit: write: %w", err))
		return w.err
	}
	if w.interval <= 0 {
		if err := w.out.Flush(); err != nil {
			w.setErr(fmt.Errorf("audit: write: %w", err))
			return w.err
		}
	}
	w.seq, w.head = seq, hash
	return nil
}

// Head returns the seq and hash of the last line written: anchor them
// outside the host to detect a log truncated from the end.
func (w *Writer) Head() (seq uint64, hash string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq, w.head
}

// Err is the error that stopped the writer, if a write failed: the log's
// chain can no longer be continued, and records written since are lost.
func (w *Writer) Err() error {
	if !w.failed.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// setErr records the writer's first failure; w.mu is held.
func (w *Writer) setErr(err error) {
	if err != nil {
		w.err = err
		w.failed.Store(true)
	}
}

// Flush hands buffered records to the OS.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.out.Flush(); err != nil {
		w.setErr(fmt.Errorf("audit: write: %w", err))
	}
	return w.err
}

// Close flushes every record written, fsyncs and closes a file opened by
// Open. Later Writes fail with ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.done)
	w.mu.Unlock()
	w.wg.Wait()

	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	if err == nil {
		err = w.out.Flush()
	}
	if w.file != nil {
		if serr := w.file.Sync(); err == nil {
			err = serr
		}
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
	}
	w.setErr(ErrClosed)
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}

// lastLine reads the last line of f and returns its seq and hash, or io.EOF
// for an empty file. It reads backwards, so reopening a large log is cheap.
func lastLine(f *os.File) (uint64, string, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := st.Size()
	if size == 0 {
		return 0, "", io.EOF
	}
	var tail []byte
	const chunk = 64 << 10
	for off := size; ; {
		n := int64(chunk)
		if off < n {
			n = off
		}
		off -= n
		buf := make([]byte, n, int(n)+len(tail))
		if _, err := f.ReadAt(buf, off); err != nil {
			return 0, "", err
		}
		tail = append(buf, tail...)
		if len(tail) > 0 && tail[len(tail)-1] != '\n' {
			// A crash in the middle of a write. Appending after it would
			// break the chain for good; an operator must look first.
			return 0, "", errors.New("ends with an incomplete line (torn write?); truncate it to the last complete line or start a new log")
		}
		if i := bytes.LastIndexByte(tail[:len(tail)-1], '\n'); i >= 0 {
			tail = tail[i+1:]
			break
		}
		if off == 0 {
			break
		}
	}
	line := tail[:len(tail)-1]
	body, hash, ok, framed := unseal(line)
	if !framed || !ok {
		return 0, "", errors.New("last line is not an intact audit line; run `mandate audit verify`")
	}
	var h struct {
		Seq *uint64 `json:"seq"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Seq == nil {
		return 0, "", errors.New("last line has no seq; run `mandate audit verify`")
	}
	return *h.Seq, hash, nil
}
