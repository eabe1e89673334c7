package proxy

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// PostgreSQL ignores Sync and Flush while a COPY FROM STDIN reads the
// client's rows ("for the convenience of client libraries": libpq sends
// an extended-protocol batch's Sync before the rows, and another after
// CopyDone). No ReadyForQuery answers such a Sync, so a proxy that counted
// it as a segment would take every later answer for the one before it: a
// failed PREPARE for one that ran, and then re-check an EXECUTE against
// the wrong text (red team round 5, W1). Whether a Sync is ignored depends
// on whether the COPY started, which only its answer tells: CopyInResponse,
// or an error (the COPY's own, or an earlier message's, which skips it).
// So a Sync sent after a COPY FROM STDIN and before the client ends it
// waits for that answer: if the COPY started, mandate drops the Sync as
// PostgreSQL would have; if not, the Sync goes on as any other.
//
// A COPY that fails midway ends without the client's say: in the simple
// protocol PostgreSQL answers at once and reads on as usual, in the
// extended protocol it skips to the next Sync. The window ends with the
// client's CopyDone or CopyFail, or any message other than rows, Sync or
// Flush. A Sync dropped inside it was never counted, so the accounting
// stays in step either way; a client waiting for the extended protocol's
// answer sends its Sync after CopyDone, as libpq and the other drivers do.
// (A COPY FROM STDIN must end its query string, rewrite.Effect.CopyIn, so
// one window covers one COPY.) The transparent relay decides nothing and
// does not follow this: there a Sync inside a COPY only keeps the
// connection out of the pool, as work still owed.

// copyWindow is the client loop's view of a COPY FROM STDIN it forwarded.
type copyWindow struct {
	open    bool
	started bool       // its answer was CopyInResponse
	wait    *copyStart // its answer, until it came
}

// copyStart is the upstream loop's word on one COPY FROM STDIN.
type copyStart struct {
	at      uint64    // the ReadyForQuery answers before its segment's
	nth     uint64    // it is the segment's nth COPY FROM STDIN: its CopyInResponse is the nth
	started chan bool // CopyInResponse (true) or ErrorResponse (false); buffered
}

// copyProgress is what the upstream loop has seen of the segment it is
// answering: CopyInResponses, and whether an error came (its index + 1, so
// that zero means none yet). An error skips every later COPY of the
// segment, so a COPY sent after it is answered already.
type copyProgress struct {
	erredAt atomic.Uint64
	started atomic.Uint64 // CopyInResponses in the segment being answered
}

// errUpstreamGone ends a client loop waiting for an upstream that ended.
var errUpstreamGone = errors.New("the upstream connection ended")

// copySent opens the window of a COPY FROM STDIN sent in the segment
// being sent.
func (s *session) copySent() {
	if s.copyNthAt != s.segment {
		s.copyNthAt, s.copyNth = s.segment, 0
	}
	s.copyNth++
	w := &copyStart{at: s.segment, nth: s.copyNth, started: make(chan bool, 1)}
	s.copyIn = copyWindow{open: true, wait: w}
	s.copyWait.Store(w)
	// An error the upstream loop saw in this segment before w was there
	// skips the COPY: nothing else will answer it. (The upstream loop
	// stores the error before it looks for w; this looks after storing w.)
	if s.copyProgress.erredAt.Load() == s.segment+1 {
		s.copyAnswer(w, false)
	}
}

// copyEnded closes the window.
func (s *session) copyEnded() {
	if s.copyIn.open {
		s.copyIn = copyWindow{}
		s.copyWait.Store(nil)
	}
}

// syncInCopy reports whether the client's Sync falls inside a COPY FROM
// STDIN that started, and is to be dropped; it waits for the COPY's
// answer when it has not come yet.
func (s *session) syncInCopy() (bool, error) {
	if !s.copyIn.open {
		return false, nil
	}
	if w := s.copyIn.wait; w != nil {
		// What came before the Sync must reach the upstream to be answered.
		if err := s.flushUpstream(); err != nil {
			return false, err
		}
		select {
		case started := <-w.started:
			s.copyIn.started, s.copyIn.wait = started, nil
		case <-s.upGone:
			return false, errUpstreamGone
		}
	}
	if !s.copyIn.started {
		s.copyEnded()
		return false, nil
	}
	return true, nil
}

// copyTap, in the upstream loop, follows the segment being answered and
// gives the COPY the client loop may wait on its word: its own
// CopyInResponse, or an error in its segment before it.
func (s *session) copyTap(typ byte) {
	at := s.answered.Load()
	switch typ {
	case 'Z':
		s.copyProgress.started.Store(0)
		return
	case 'E':
		s.copyProgress.erredAt.Store(at + 1)
	case 'G':
		s.copyProgress.started.Add(1)
	}
	w := s.copyWait.Load()
	if w == nil || w.at != at {
		return
	}
	switch {
	case typ == 'E':
		s.copyAnswer(w, false)
	case s.copyProgress.started.Load() == w.nth:
		s.copyAnswer(w, true)
	}
}

// copyAnswer gives w its word, once.
func (s *session) copyAnswer(w *copyStart, started bool) {
	if s.copyWait.CompareAndSwap(w, nil) {
		w.started <- started
	}
}

// flushUpstream writes what the client loop holds for the upstream.
func (s *session) flushUpstream() error {
	u := s.upstream
	if len(u.wbuf) == 0 {
		return nil
	}
	s.srv.metrics.bytesFromClient.Add(float64(len(u.wbuf)))
	if _, err := u.conn.Write(u.wbuf); err != nil {
		return fmt.Errorf("write upstream: %w", err)
	}
	u.wbuf = u.wbuf[:0]
	return nil
}
