package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// VerifyError locates the first line that breaks the chain. Line numbers
// count from 1 and refer to the file as it is now: after a deletion, the
// line reported is the first one after the gap.
type VerifyError struct {
	Line   int
	Reason string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("audit log line %d: %s", e.Line, e.Reason) }

// Verify reads a whole log and checks its chain. It returns the number of
// records (the genesis line excluded) and, if the chain is broken, a
// *VerifyError naming the first bad line. It cannot detect lines removed
// from the end: compare the last hash with an anchored Writer.Head.
func Verify(r io.Reader) (records int, err error) {
	br := bufio.NewReaderSize(r, bufferSize)
	var (
		prevHash string
		lineNo   int
	)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && errors.Is(err, io.EOF) {
			break
		}
		lineNo++
		if err != nil && !errors.Is(err, io.EOF) {
			return records, fmt.Errorf("audit log line %d: %w", lineNo, err)
		}
		fail := func(format string, args ...any) (int, error) {
			return records, &VerifyError{Line: lineNo, Reason: fmt.Sprintf(format, args...)}
		}
		if line[len(line)-1] != '\n' {
			return fail("incomplete last line (torn write or truncation)")
		}
		body, hash, ok, framed := unseal(line[:len(line)-1])
		if !framed {
			return fail("not an audit line (no trailing hash)")
		}
		if !ok {
			return fail("hash mismatch: the line was modified")
		}
		var h struct {
			Seq    *uint64 `json:"seq"`
			Prev   string  `json:"prev"`
			Format string  `json:"format"`
			LogID  string  `json:"log_id"`
		}
		if err := json.Unmarshal(body, &h); err != nil || h.Seq == nil {
			return fail("not an audit line (no seq)")
		}
		if lineNo == 1 {
			if h.Format != Format || *h.Seq != 0 || h.LogID == "" || h.Prev != genesisPrev {
				return fail("missing genesis line (want format %q, seq 0): the start of the log was removed", Format)
			}
			prevHash = hash
			continue
		}
		if h.Format != "" {
			return fail("unexpected genesis line inside the log: a line was inserted")
		}
		if want := uint64(lineNo - 1); *h.Seq != want {
			return fail("seq %d, want %d: a line was deleted, inserted or reordered", *h.Seq, want)
		}
		if h.Prev != prevHash {
			return fail("prev does not match the hash of line %d: a line was deleted, inserted or reordered", lineNo-1)
		}
		prevHash = hash
		records++
	}
	if lineNo == 0 {
		return 0, &VerifyError{Line: 1, Reason: "empty log: no genesis line"}
	}
	return records, nil
}
