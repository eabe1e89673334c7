package proxy

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mandate-proxy/mandate/rewrite"
)

// searchPath follows the session's search_path as SET statements change
// it, so the rewriter resolves names as the upstream will. The rewriter
// schema-qualifies every relation it forwards, so a wrong guess here can
// change which table a name means, never what is enforced on it.
//
// It follows PostgreSQL's rules (rewrite's doc.go, "Session state"): a SET
// in a transaction is undone by ROLLBACK, and by ROLLBACK TO a savepoint
// taken before it; SET LOCAL lasts until the transaction ends; the
// statements of one Query, or of the extended-protocol messages up to a
// Sync, run in one implicit transaction when no block is open, and an
// error rolls it back. The client loop decides each statement as if every
// statement forwarded before it succeeds (it cannot wait: a pipelined or
// multi-statement query is decided before any of it runs), except those a
// refusal marker will make fail; the upstream loop then replays each
// segment as its answers say it ran: the statements before its first
// ErrorResponse, and its ReadyForQuery status.
//
// The same answers tell other parts of the session which of the messages
// they forwarded ran (named.go, prepared.go): a message forwarded with a
// watch learns its outcome (stmtReady or stmtFailed) when its answer, or
// an error before it, arrives.
type searchPath struct {
	mu       sync.Mutex
	initial  []string      // the session's start value (nil: the upstream's default), what RESET returns to
	answered pathState     // after the last segment the upstream answered
	segments []pathSegment // forwarded and not answered yet, oldest first; the last may still be open
	now      pathState     // answered with every forwarded statement run: what the next one sees
}

// pathSegment is one Query, or the extended-protocol messages up to a
// Sync: the messages forwarded in it that are answered one by one (a
// Query's statements and Executes, by a CommandComplete,
// EmptyQueryResponse or PortalSuspended; Parses and Binds, by a
// ParseComplete or BindComplete; any of them by an ErrorResponse, after
// which the upstream skips the rest), and what those answers said.
type pathSegment struct {
	ops     []pathOp
	watches []pathWatch // in the order of their messages
	settled int         // watches told their outcome
	sent    int         // messages forwarded
	refusal int         // answer at which a refusal marker fails it, or -1
	open    bool        // its Query or Sync is not forwarded yet
	answers int         // answers seen, the first error excluded
	failed  int         // answer the upstream failed at, or -1
}

// pathWatch is a forwarded message whose outcome someone waits for.
type pathWatch struct {
	at  int           // its answer's index in the segment
	ran *atomic.Int32 // told stmtReady or stmtFailed
}

// pathOp is a forwarded statement that matters to the path.
type pathOp struct {
	at     int // its answer's index in the segment
	effect rewrite.Effect
}

// pathState is the path at one point of the session, as PostgreSQL holds
// it: the value a commit keeps, the value in effect, and the open
// transaction's levels, each with the values at its start.
type pathState struct {
	session []string // last SET without LOCAL
	current []string // in effect: a SET LOCAL's until the transaction ends
	tx      txKind
	failed  bool // a block after an error: COMMIT rolls back
	levels  []pathLevel
}

type txKind uint8

const (
	noTx       txKind = iota
	implicitTx        // the statements of one segment outside a block
	blockTx           // BEGIN … COMMIT
)

// pathLevel is the values at the start of a transaction (levels[0]) or at
// a savepoint.
type pathLevel struct {
	savepoint        string
	session, current []string
}

// start sets the value the session starts with.
func (p *searchPath) start(path []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.initial = path
	p.answered = pathState{session: path, current: path}
	p.now = p.answered
}

// current is the path in effect for the next statement.
func (p *searchPath) current() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now.current
}

// sent records a message forwarded in the current segment (a Query's
// statement, an Execute, a Parse or a Bind) and what it does to the path
// if it succeeds; ran, if not nil, learns whether it did.
func (p *searchPath) sent(e rewrite.Effect, ran *atomic.Int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seg := p.sending()
	if ran != nil {
		ran.Store(stmtPending)
		seg.watches = append(seg.watches, pathWatch{at: seg.sent, ran: ran})
	}
	if e.SearchPath != nil || e.Tx != rewrite.TxNone {
		seg.ops = append(seg.ops, pathOp{at: seg.sent, effect: e})
		if seg.refusal < 0 {
			p.now.run(e, p.initial)
		}
	}
	seg.sent++
}

// refused records a refusal marker forwarded in the current segment: the
// upstream fails there and skips the rest of the segment.
func (p *searchPath) refused() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seg := p.sending(); seg.refusal < 0 {
		seg.refusal = seg.sent
		p.now.fail()
	}
}

// segmentSent closes the current segment: its Query or Sync is forwarded.
func (p *searchPath) segmentSent() {
	p.mu.Lock()
	defer p.mu.Unlock()
	seg := p.sending()
	seg.open = false
	if seg.refusal < 0 {
		p.now.endSegment()
	}
}

// sending is the open segment, opened if need be. The caller holds mu.
func (p *searchPath) sending() *pathSegment {
	if n := len(p.segments); n == 0 || !p.segments[n-1].open {
		p.segments = append(p.segments, pathSegment{refusal: -1, open: true, failed: -1})
	}
	return &p.segments[len(p.segments)-1]
}

// answer counts a message's successful answer (CommandComplete,
// EmptyQueryResponse, PortalSuspended, ParseComplete, BindComplete) in the
// oldest unanswered segment.
func (p *searchPath) answer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.segments) > 0 && p.segments[0].failed < 0 {
		seg := &p.segments[0]
		seg.answers++
		seg.settle(stmtReady, seg.answers)
	}
}

// errored records an ErrorResponse in the oldest unanswered segment: the
// message being answered failed, and the upstream skips the rest.
func (p *searchPath) errored() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.segments) > 0 && p.segments[0].failed < 0 {
		seg := &p.segments[0]
		seg.failed = seg.answers
		seg.settle(stmtFailed, math.MaxInt)
	}
}

// settle tells the watches of messages before answer index until that
// they ran (stmtReady) or not (stmtFailed).
func (seg *pathSegment) settle(state int32, until int) {
	for seg.settled < len(seg.watches) && seg.watches[seg.settled].at < until {
		seg.watches[seg.settled].ran.Store(state)
		seg.watches[seg.settled] = pathWatch{}
		seg.settled++
	}
}

// ready ends the oldest segment at its ReadyForQuery (body is the
// message's): the path becomes what its answers say ran, and the
// upstream's transaction status (idle, in a block, in a failed block)
// corrects whatever the statements could not tell.
func (p *searchPath) ready(body []byte) {
	var status byte
	if len(body) == 1 {
		status = body[0]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &p.answered
	if len(p.segments) > 0 {
		seg := &p.segments[0]
		seg.settle(stmtFailed, math.MaxInt) // left unanswered: skipped
		st.replay(seg, seg.failed, p.initial)
		if seg.failed < 0 {
			st.endSegment()
		}
		// Shift rather than reslice: the array is reused, not reallocated.
		p.segments = p.segments[:copy(p.segments, p.segments[1:])]
	}
	switch status {
	case 'I':
		if st.tx != noTx {
			st.end(!st.failed)
		}
	case 'T', 'E':
		if st.tx != blockTx {
			st.begin(blockTx)
		}
		st.failed = status == 'E'
	}
	p.now = st.clone()
	for i := range p.segments {
		seg := &p.segments[i]
		p.now.replay(seg, seg.refusal, p.initial)
		if seg.refusal < 0 && !seg.open {
			p.now.endSegment()
		}
	}
}

// changedBy reports whether running effects, in order, would change the
// path in effect at some point.
func (p *searchPath) changedBy(effects []rewrite.Effect) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.ContainsFunc(effects, func(e rewrite.Effect) bool { return e.SearchPath != nil || e.Tx != rewrite.TxNone }) {
		return false
	}
	st := p.now.clone()
	for _, e := range effects {
		st.run(e, p.initial)
		if !slices.Equal(st.current, p.now.current) {
			return true
		}
	}
	return false
}

// replay runs the statements of seg before its answer failAt (all of them
// when failAt is -1) and fails it there.
func (st *pathState) replay(seg *pathSegment, failAt int, initial []string) {
	for _, op := range seg.ops {
		if failAt >= 0 && op.at >= failAt {
			break
		}
		st.run(op.effect, initial)
	}
	if failAt >= 0 {
		st.fail()
	}
}

// run applies one successful statement.
func (st *pathState) run(e rewrite.Effect, initial []string) {
	if st.tx == noTx {
		st.begin(implicitTx) // every statement runs in a transaction
	}
	switch e.Tx {
	case rewrite.TxBegin:
		st.tx = blockTx // in an implicit transaction, a block from its start
	case rewrite.TxSavepoint:
		st.levels = append(st.levels, pathLevel{savepoint: e.Savepoint, session: st.session, current: st.current})
	case rewrite.TxRelease:
		if i := st.savepoint(e.Savepoint); i > 0 {
			st.levels = st.levels[:i]
		}
	case rewrite.TxRollbackTo:
		if i := st.savepoint(e.Savepoint); i > 0 {
			st.session, st.current = st.levels[i].session, st.levels[i].current
			st.levels = st.levels[:i+1] // the savepoint stays
			st.failed = false
		}
	case rewrite.TxCommit, rewrite.TxPrepare:
		st.end(!st.failed) // COMMIT of a failed block rolls back
	case rewrite.TxRollback:
		st.end(false)
	}
	if e.Chain && e.Tx.Ends() {
		st.begin(blockTx)
	}
	if c := e.SearchPath; c != nil {
		path := c.Path
		if c.Reset {
			path = initial
		}
		st.current = path
		if !c.Local {
			st.session = path
		}
	}
}

// savepoint is the level of the newest savepoint called name, or -1.
func (st *pathState) savepoint(name string) int {
	for i := len(st.levels) - 1; i > 0; i-- {
		if st.levels[i].savepoint == name {
			return i
		}
	}
	return -1
}

func (st *pathState) begin(kind txKind) {
	st.tx, st.failed = kind, false
	st.levels = []pathLevel{{session: st.session, current: st.current}}
}

// end commits or rolls back the transaction; SET LOCAL ends either way.
func (st *pathState) end(commit bool) {
	if !commit && len(st.levels) > 0 {
		st.session = st.levels[0].session
	}
	st.current = st.session
	st.tx, st.failed, st.levels = noTx, false, nil
}

// fail is an error: an implicit transaction rolls back, a block stays
// open, failed, until ROLLBACK (or ROLLBACK TO).
func (st *pathState) fail() {
	switch st.tx {
	case implicitTx:
		st.end(false)
	case blockTx:
		st.failed = true
	}
}

// endSegment is a segment's end without an error: an implicit transaction
// commits.
func (st *pathState) endSegment() {
	if st.tx == implicitTx {
		st.end(true)
	}
}

func (st pathState) clone() pathState {
	st.levels = slices.Clone(st.levels)
	return st
}

// searchPathKey is a path as a cache key component.
func searchPathKey(path []string) string { return strings.Join(path, "\x00") }

// startupSearchPath is the search_path a client sets at startup, as a
// parameter or with -c in options; nil when it sets none. Names are split
// on commas with surrounding blanks and double quotes removed: enough to
// resolve names as the upstream will (see searchPath on why a wrong guess
// is never a leak).
func startupSearchPath(params map[string]string) []string {
	v, ok := params["search_path"]
	fields := strings.Fields(params["options"])
	for i := 0; i < len(fields); i++ {
		kv := strings.TrimPrefix(strings.TrimPrefix(fields[i], "--"), "-c")
		if kv == "" && i+1 < len(fields) {
			i++
			kv = fields[i]
		}
		if name, val, found := strings.Cut(kv, "="); found && strings.ReplaceAll(strings.ToLower(name), "-", "_") == "search_path" {
			v, ok = val, true
		}
	}
	if !ok {
		return nil
	}
	var path []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"`); p != "" {
			path = append(path, p)
		}
	}
	return path
}
