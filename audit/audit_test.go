package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func sample(i int) Record {
	return Record{
		Session:      fmt.Sprintf("s%d", i%3),
		ClientAddr:   "127.0.0.1:5000",
		Subject:      "alice",
		Actors:       []Actor{{ID: "bob", Kind: "delegate"}, {ID: "assistant", Kind: "agent"}},
		DelegationID: "d-1",
		Purpose:      "tax",
		Fingerprint:  "a1b2c3d4e5f60718",
		Action:       "select",
		Tables:       []string{"public.accounts", "public.transactions"},
		Decision:     DecisionAllow,
		PolicyIDs:    []string{"customer-own-rows", "delegation-scope"},
		Filters:      []string{`public.accounts: customer_id = 'alice'`},
		Masks:        []string{"public.accounts.iban: partial(4)"},
		Rows:         int64(i),
		Duration:     1500 * time.Microsecond,
	}
}

// writeLog returns a log with n records.
func writeLog(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Write(sample(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func join(ls [][]byte) []byte { return bytes.Join(ls, nil) }

func TestChainVerifies(t *testing.T) {
	log := writeLog(t, 10)
	n, err := Verify(bytes.NewReader(log))
	if err != nil || n != 10 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	ls := lines(log)
	var prev string
	for i, l := range ls {
		var r Record
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			prev = r.Hash
			continue
		}
		want := sample(i)
		want.Time, want.Seq, want.Prev, want.Hash = t0, uint64(i), prev, r.Hash
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("line %d:\n got %+v\nwant %+v", i+1, r, want)
		}
		prev = r.Hash
	}
}

// TestRecordSchema pins the fields of a record line, so that adding one is a
// deliberate, reviewed change: nothing may carry a token or parameter values.
func TestRecordSchema(t *testing.T) {
	ls := lines(writeLog(t, 1))
	var m map[string]any
	if err := json.Unmarshal(ls[1], &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := []string{"action", "actors", "client_addr", "decision", "delegation_id", "duration_ns", "filters",
		"fingerprint", "hash", "masks", "policy_ids", "prev", "purpose", "rows_affected", "seq", "session",
		"subject", "tables", "time"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record fields %v", got)
	}
	if !bytes.HasPrefix(ls[1], []byte(`{"seq":1,"prev":"`)) {
		t.Fatalf("line does not start with seq and prev: %s", ls[1])
	}
}

func reseal(t testing.TB, line []byte) []byte {
	t.Helper()
	body, _, _, framed := unseal(bytes.TrimSuffix(line, []byte("\n")))
	if !framed {
		t.Fatal("not framed")
	}
	out, _ := seal(nil, body)
	return out
}

func TestVerifyDetectsTampering(t *testing.T) {
	orig := lines(writeLog(t, 10)) // 11 lines: genesis + 10 records
	edit := func(f func(ls [][]byte) [][]byte) []byte {
		ls := make([][]byte, len(orig))
		for i := range orig {
			ls[i] = bytes.Clone(orig[i])
		}
		return join(f(ls))
	}
	cases := []struct {
		name     string
		log      []byte
		wantLine int
		wantWhy  string
	}{
		{"modified record", edit(func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte(`"alice"`), []byte(`"carol"`), 1)
			return ls
		}), 5, "modified"},
		{"modified and rehashed", edit(func(ls [][]byte) [][]byte {
			ls[4] = reseal(t, bytes.Replace(ls[4], []byte(`"rows_affected":4`), []byte(`"rows_affected":0`), 1))
			return ls
		}), 6, "prev does not match"},
		{"modified last line", edit(func(ls [][]byte) [][]byte {
			ls[10] = bytes.Replace(ls[10], []byte(`"allow"`), []byte(`"deny"`), 1)
			return ls
		}), 11, "modified"},
		{"deleted record", edit(func(ls [][]byte) [][]byte { return append(ls[:4], ls[5:]...) }), 5, "seq 5, want 4"},
		{"deleted genesis", edit(func(ls [][]byte) [][]byte { return ls[1:] }), 1, "genesis"},
		{"duplicated record", edit(func(ls [][]byte) [][]byte {
			return append(ls[:6], append([][]byte{ls[3]}, ls[6:]...)...)
		}), 7, "seq 3, want 6"},
		{"forged record with the right seq and prev", edit(func(ls [][]byte) [][]byte {
			var r Record
			_ = json.Unmarshal(ls[5], &r)
			forged := []byte(fmt.Sprintf(`{"seq":6,"prev":%q,"subject":"mallory","decision":"allow"}`, r.Hash))
			line, _ := seal(nil, forged)
			return append(ls[:6], append([][]byte{line}, ls[6:]...)...)
		}), 8, "seq 6, want 7"},
		{"reordered", edit(func(ls [][]byte) [][]byte { ls[3], ls[4] = ls[4], ls[3]; return ls }), 4, "seq 4, want 3"},
		{"second genesis", edit(func(ls [][]byte) [][]byte {
			return append(ls[:3], append([][]byte{ls[0]}, ls[3:]...)...)
		}), 4, "genesis"},
		{"torn last line", edit(func(ls [][]byte) [][]byte { ls[10] = ls[10][:40]; return ls }), 11, "incomplete"},
		{"hash member removed", edit(func(ls [][]byte) [][]byte {
			ls[2] = append(bytes.Split(ls[2], []byte(`,"hash"`))[0], "}\n"...)
			return ls
		}), 3, "no trailing hash"},
		{"empty", nil, 1, "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(tc.log))
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want *VerifyError", err)
			}
			if ve.Line != tc.wantLine || !strings.Contains(ve.Reason, tc.wantWhy) {
				t.Fatalf("got %v, want line %d (%s)", err, tc.wantLine, tc.wantWhy)
			}
		})
	}

	// The documented limit: dropping lines from the end leaves a valid chain,
	// which only a head anchored elsewhere reveals.
	if n, err := Verify(bytes.NewReader(join(orig[:9]))); err != nil || n != 8 {
		t.Fatalf("truncated log: %d, %v", n, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	for _, interval := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprint("interval=", interval), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w, err := Open(path, Options{FlushInterval: interval})
			if err != nil {
				t.Fatal(err)
			}
			const goroutines, each = 8, 250
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						if err := w.Write(sample(g*each + i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			assertLog(t, path, goroutines*each)
		})
	}
}

func assertLog(t *testing.T, path string, want int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := Verify(f); err != nil || n != want {
		t.Fatalf("Verify = %d, %v; want %d records", n, err, want)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var heads []string
	for round := range 3 {
		w, err := Open(path, Options{Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		if seq, head := w.Head(); round > 0 && (seq != uint64(round*2) || head != heads[len(heads)-1]) {
			t.Fatalf("round %d: reopened at %d %s", round, seq, head)
		}
		for i := range 2 {
			if err := w.Write(sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		_, head := w.Head()
		heads = append(heads, head)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	assertLog(t, path, 6)
	raw, _ := os.ReadFile(path)
	if n := bytes.Count(raw, []byte(`"format"`)); n != 1 {
		t.Fatalf("%d genesis lines", n)
	}
}

func TestOpenRefusesDamagedTail(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"torn write": func(b []byte) []byte { return append(b, `{"seq":3,"pre`...) },
		"modified tail": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"rows_affected":2`), []byte(`"rows_affected":9`), 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(path, damage(writeLog(t, 2)), 0o600); err != nil {
				t.Fatal(err)
			}
			if w, err := Open(path, Options{}); err == nil {
				w.Close()
				t.Fatal("continued a damaged log")
			}
		})
	}
}

func TestOpenIsExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w2, err := Open(path, Options{}); err == nil {
		w2.Close()
		t.Fatal("second writer on the same log")
	}
}

func TestIntervalFlushAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	assertLog(t, path, 0) // buffered: only the genesis line is on disk
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	assertLog(t, path, 3)
	if err := w.Write(sample(4)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	assertLog(t, path, 4)
	if err := w.Write(sample(5)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestWriteRejectsAndSticks(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := sample(1)
	bad.Decision = "maybe"
	if err := w.Write(bad); err == nil {
		t.Fatal("accepted an invalid decision")
	}
	if err := w.Write(sample(1)); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(bytes.NewReader(buf.Bytes())); err != nil || n != 1 {
		t.Fatalf("a rejected record disturbed the chain: %d %v", n, err)
	}

	fw := &failingWriter{left: 2}
	w, err = NewWriter(fw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(sample(1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(sample(2)); err == nil {
		t.Fatal("write error lost")
	}
	fw.left = 100
	if err := w.Write(sample(3)); err == nil {
		t.Fatal("wrote after a failed write: the chain would have a hole")
	}
}

type failingWriter struct{ left int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.left == 0 {
		return 0, io.ErrShortWrite
	}
	f.left--
	return len(p), nil
}

func BenchmarkWrite(b *testing.B) {
	run := func(b *testing.B, open func(b *testing.B) *Writer) {
		w := open(b)
		r := sample(1)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.Write(r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("discard", func(b *testing.B) {
		run(b, func(b *testing.B) *Writer {
			w, err := NewWriter(io.Discard, Options{})
			if err != nil {
				b.Fatal(err)
			}
			return w
		})
	})
	for _, interval := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run(fmt.Sprint("file/flush=", interval), func(b *testing.B) {
			run(b, func(b *testing.B) *Writer {
				w, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{FlushInterval: interval})
				if err != nil {
					b.Fatal(err)
				}
				return w
			})
		})
	}
}
