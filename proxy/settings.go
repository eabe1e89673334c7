package proxy

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mandate-proxy/mandate/rewrite"
)

// sessionSettings follows the session's settings that decide how mandate
// reads and enforces a statement, as statements change them:
//   - search_path, so the rewriter resolves names as the upstream will. The
//     rewriter schema-qualifies every relation it forwards, so a wrong guess
//     here can change which table a name means, never what is enforced on it;
//   - the identity (SET mandate.token) and the purpose (SET mandate.purpose),
//     which mandate keeps itself: the upstream runs a stand-in with the same
//     transaction semantics (settingReplacement) whose answers say whether
//     the setting ran.
//
// All follow PostgreSQL's rules (rewrite's doc.go, "Session state"): a SET
// in a transaction is undone by ROLLBACK, and by ROLLBACK TO a savepoint
// taken before it; SET LOCAL lasts until the transaction ends; RESET ALL
// and DISCARD ALL return every setting to the session's start; the
// statements of one Query, or of the extended-protocol messages up to a
// Sync, run in one implicit transaction when no block is open, and an error
// rolls it back. A setting changes when its statement is forwarded to run
// (a Query's statement, an Execute), never at Parse. The client loop
// decides each statement as if every statement forwarded before it
// succeeds (it cannot wait: a pipelined or multi-statement query is decided
// before any of it runs), except those a refusal marker will make fail; the
// upstream loop then replays each segment as its answers say it ran: the
// statements before its first ErrorResponse, and its ReadyForQuery status.
// A wrong guess (a statement pipelined behind an earlier Query or Sync that
// fails) may keep an identity or purpose a rollback would have ended, or
// take one whose SET did not run; never one this session did not set
// itself with a token verified then.
//
// The same answers tell other parts of the session which of the messages
// they forwarded ran (named.go, prepared.go): a message forwarded with a
// watch learns its outcome (stmtReady or stmtFailed) when its answer, or
// an error before it, arrives.
type sessionSettings struct {
	mu       sync.Mutex
	initial  settingValues     // the session's start values, what RESET returns to
	answered settingsState     // after the last segment the upstream answered
	segments []settingsSegment // forwarded and not answered yet, oldest first; the last may still be open
	now      settingsState     // answered with every forwarded statement run: what the next one sees
	literals uint64            // the last settingValues.literals handed out
}

// settingValues are the values of the tracked settings at one point.
type settingValues struct {
	path     []string   // nil: the upstream's default
	identity *principal // SET mandate.token; nil: the login principal
	purpose  string     // SET mandate.purpose; "": the token's claim, if any
	// literals names the values of the settings that change how constants
	// read (rewrite.Effect.Literals): 0 at the session's start, a fresh
	// number at each SET or RESET of one, the old number again when a
	// rollback undoes it. Statements mandate prepares are cached per number.
	literals uint64
}

func (v settingValues) equal(o settingValues) bool {
	return v.identity == o.identity && v.purpose == o.purpose && v.literals == o.literals && slices.Equal(v.path, o.path)
}

// settingsSegment is one Query, or the extended-protocol messages up to a
// Sync: the messages forwarded in it that are answered one by one (a
// Query's statements and Executes, by a CommandComplete,
// EmptyQueryResponse or PortalSuspended; Parses and Binds, by a
// ParseComplete or BindComplete; any of them by an ErrorResponse, after
// which the upstream skips the rest), and what those answers said.
type settingsSegment struct {
	ops     []settingsOp
	watches []settingsWatch // in the order of their messages
	settled int             // watches told their outcome
	sent    int             // messages forwarded
	refusal int             // answer at which a refusal marker fails it, or -1
	open    bool            // its Query or Sync is not forwarded yet
	answers int             // answers seen, the first error excluded
	failed  int             // answer the upstream failed at, or -1
}

// settingsWatch is a forwarded message whose outcome someone waits for.
type settingsWatch struct {
	at  int           // its answer's index in the segment
	ran *atomic.Int32 // told stmtReady or stmtFailed
}

// settingsOp is a forwarded statement that matters to the settings.
type settingsOp struct {
	at       int // its answer's index in the segment
	effect   rewrite.Effect
	mandate  *mandateChange
	literals uint64 // the fresh settingValues.literals of an effect with Literals
}

// mandateChange is a SET or RESET of mandate.token or mandate.purpose, its
// token verified.
type mandateChange struct {
	purpose  bool       // mandate.purpose; mandate.token otherwise
	identity *principal // the token's; nil for RESET (the login principal)
	value    string     // the purpose
	local    bool
}

// settingsState is the settings at one point of the session, as
// PostgreSQL holds them: the values a commit keeps, the values in effect,
// and the open transaction's levels, each with the values at its start.
type settingsState struct {
	session settingValues // last SET without LOCAL
	current settingValues // in effect: a SET LOCAL's until the transaction ends
	tx      txKind
	failed  bool // a block after an error: COMMIT rolls back
	levels  []settingsLevel
}

type txKind uint8

const (
	noTx       txKind = iota
	implicitTx        // the statements of one segment outside a block
	blockTx           // BEGIN … COMMIT
)

// settingsLevel is the values at the start of a transaction (levels[0]) or
// at a savepoint.
type settingsLevel struct {
	savepoint        string
	session, current settingValues
}

// start sets the search_path the session starts with.
func (p *sessionSettings) start(path []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.initial = settingValues{path: path}
	p.answered = settingsState{session: p.initial, current: p.initial}
	p.now = p.answered
}

// current is the values in effect for the next statement.
func (p *sessionSettings) current() settingValues {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now.current
}

// sent records a message forwarded in the current segment (a Query's
// statement, an Execute, a Parse or a Bind) and what it does to the
// settings if it succeeds; ran, if not nil, learns whether it did.
func (p *sessionSettings) sent(e rewrite.Effect, ran *atomic.Int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ran != nil {
		ran.Store(stmtPending)
		seg := p.sending()
		seg.watches = append(seg.watches, settingsWatch{at: seg.sent, ran: ran})
	}
	if matters(e) {
		p.record(settingsOp{effect: e})
	}
	p.sending().sent++
}

// set records a forwarded mandate.* setting's stand-in, like sent.
func (p *sessionSettings) set(c mandateChange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record(settingsOp{mandate: &c})
	p.sending().sent++
}

// matters reports whether a statement's effect may change the settings.
func matters(e rewrite.Effect) bool {
	return e.SearchPath != nil || e.Tx != rewrite.TxNone || e.ResetAll || e.Literals != nil
}

// record adds op to the open segment as its next statement. The caller
// holds mu.
func (p *sessionSettings) record(op settingsOp) {
	seg := p.sending()
	op.at = seg.sent
	if op.effect.Literals != nil {
		p.literals++
		op.literals = p.literals
	}
	seg.ops = append(seg.ops, op)
	if seg.refusal < 0 {
		p.now.run(op, p.initial)
	}
}

// refused records a refusal marker forwarded in the current segment: the
// upstream fails there and skips the rest of the segment.
func (p *sessionSettings) refused() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seg := p.sending(); seg.refusal < 0 {
		seg.refusal = seg.sent
		p.now.fail()
	}
}

// segmentSent closes the current segment: its Query or Sync is forwarded.
func (p *sessionSettings) segmentSent() {
	p.mu.Lock()
	defer p.mu.Unlock()
	seg := p.sending()
	seg.open = false
	if seg.refusal < 0 {
		p.now.endSegment()
	}
}

// sending is the open segment, opened if need be. The caller holds mu.
func (p *sessionSettings) sending() *settingsSegment {
	if n := len(p.segments); n == 0 || !p.segments[n-1].open {
		p.segments = append(p.segments, settingsSegment{refusal: -1, open: true, failed: -1})
	}
	return &p.segments[len(p.segments)-1]
}

// settled reports whether every segment forwarded (closed) is answered:
// only then are the values current() gives the upstream's, not what they
// will be if everything pipelined before succeeds (red team round 35, F1:
// a RESET ALL skipped after an error). Ask before closing the segment of
// the message at hand.
func (p *sessionSettings) settled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, seg := range p.segments {
		if !seg.open {
			return false
		}
	}
	return true
}

// pathsInDoubt are the search_paths other than the one current() gives
// that may be in effect upstream for the next statement: while forwarded
// segments are unanswered, one may fail and roll back what current()
// assumes ran. Each is a path some state on the way held (a transaction's
// or savepoint's start, the session's start, a SET), for a failure only
// ever returns to one of those. Nil when the answers are all in.
func (p *sessionSettings) pathsInDoubt() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.ContainsFunc(p.segments, func(seg settingsSegment) bool { return !seg.open }) {
		return nil
	}
	// nil (the upstream's default) and empty (pg_catalog only) differ.
	same := func(a, b []string) bool { return (a == nil) == (b == nil) && slices.Equal(a, b) }
	var out [][]string
	add := func(path []string) {
		if !same(path, p.now.current.path) && !slices.ContainsFunc(out, func(o []string) bool { return same(o, path) }) {
			out = append(out, path)
		}
	}
	collect := func(st *settingsState) {
		add(st.session.path)
		add(st.current.path)
		for _, l := range st.levels {
			add(l.session.path)
			add(l.current.path)
		}
	}
	add(p.initial.path)
	st := p.answered.clone()
	collect(&st)
	for i := range p.segments {
		seg := &p.segments[i]
		for _, op := range seg.ops {
			if seg.refusal >= 0 && op.at >= seg.refusal {
				break // the upstream fails at the marker and skips the rest
			}
			st.run(op, p.initial)
			collect(&st)
		}
		if seg.refusal < 0 && !seg.open {
			st.endSegment()
			collect(&st)
		}
	}
	return out
}

// answer counts a message's successful answer (CommandComplete,
// EmptyQueryResponse, PortalSuspended, ParseComplete, BindComplete) in the
// oldest unanswered segment.
func (p *sessionSettings) answer() {
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
func (p *sessionSettings) errored() {
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
func (seg *settingsSegment) settle(state int32, until int) {
	for seg.settled < len(seg.watches) && seg.watches[seg.settled].at < until {
		seg.watches[seg.settled].ran.Store(state)
		seg.watches[seg.settled] = settingsWatch{}
		seg.settled++
	}
}

// ready ends the oldest segment at its ReadyForQuery (body is the
// message's): the settings become what its answers say ran, and the
// upstream's transaction status (idle, in a block, in a failed block)
// corrects whatever the statements could not tell.
func (p *sessionSettings) ready(body []byte) {
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
// values in effect at some point.
func (p *sessionSettings) changedBy(effects []rewrite.Effect) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.ContainsFunc(effects, matters) {
		return false
	}
	st := p.now.clone()
	for _, e := range effects {
		st.run(settingsOp{effect: e}, p.initial)
		if !st.current.equal(p.now.current) {
			return true
		}
	}
	return false
}

// replay runs the statements of seg before its answer failAt (all of them
// when failAt is -1) and fails it there.
func (st *settingsState) replay(seg *settingsSegment, failAt int, initial settingValues) {
	for _, op := range seg.ops {
		if failAt >= 0 && op.at >= failAt {
			break
		}
		st.run(op, initial)
	}
	if failAt >= 0 {
		st.fail()
	}
}

// run applies one successful statement.
func (st *settingsState) run(op settingsOp, initial settingValues) {
	if st.tx == noTx {
		st.begin(implicitTx) // every statement runs in a transaction
	}
	e := op.effect
	switch e.Tx {
	case rewrite.TxBegin:
		st.tx = blockTx // in an implicit transaction, a block from its start
	case rewrite.TxSavepoint:
		st.levels = append(st.levels, settingsLevel{savepoint: e.Savepoint, session: st.session, current: st.current})
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
			path = initial.path
		}
		st.current.path = path
		if !c.Local {
			st.session.path = path
		}
	}
	if c := e.Literals; c != nil {
		st.current.literals = op.literals
		if !c.Local {
			st.session.literals = op.literals
		}
	}
	if e.ResetAll {
		st.session, st.current = initial, initial
	}
	if c := op.mandate; c != nil {
		st.current.setMandate(c)
		if !c.local {
			st.session.setMandate(c)
		}
	}
}

func (v *settingValues) setMandate(c *mandateChange) {
	if c.purpose {
		v.purpose = c.value
	} else {
		v.identity = c.identity
	}
}

// savepoint is the level of the newest savepoint called name, or -1.
func (st *settingsState) savepoint(name string) int {
	for i := len(st.levels) - 1; i > 0; i-- {
		if st.levels[i].savepoint == name {
			return i
		}
	}
	return -1
}

func (st *settingsState) begin(kind txKind) {
	st.tx, st.failed = kind, false
	st.levels = []settingsLevel{{session: st.session, current: st.current}}
}

// end commits or rolls back the transaction; SET LOCAL ends either way.
func (st *settingsState) end(commit bool) {
	if !commit && len(st.levels) > 0 {
		st.session = st.levels[0].session
	}
	st.current = st.session
	st.tx, st.failed, st.levels = noTx, false, nil
}

// fail is an error: an implicit transaction rolls back, a block stays
// open, failed, until ROLLBACK (or ROLLBACK TO).
func (st *settingsState) fail() {
	switch st.tx {
	case implicitTx:
		st.end(false)
	case blockTx:
		st.failed = true
	}
}

// endSegment is a segment's end without an error: an implicit transaction
// commits.
func (st *settingsState) endSegment() {
	if st.tx == implicitTx {
		st.end(true)
	}
}

func (st settingsState) clone() settingsState {
	st.levels = slices.Clone(st.levels)
	return st
}

// searchPathKey is a path as a cache key component.
func searchPathKey(path []string) string { return strings.Join(path, "\x00") }

// startupSearchPath is the search_path a client sets at startup, as a
// parameter or with -c in options, read as PostgreSQL reads it; nil when it
// sets none, ok false when PostgreSQL would refuse the value.
func startupSearchPath(params map[string]string) (path []string, ok bool) {
	var v string
	settings, _ := optionSettings(params["options"]) // checked in upstreamParams
	for _, kv := range settings {
		if kv[0] == "search_path" {
			v, ok = kv[1], true
		}
	}
	// PostgreSQL applies options first, then the other parameters.
	if p, set := params["search_path"]; set {
		v, ok = p, true
	}
	if !ok {
		return nil, true
	}
	return splitIdentifiers(v)
}

// splitIdentifiers splits a list of names as PostgreSQL's
// SplitIdentifierString does for search_path: commas separate, blanks
// around names go, a quoted name keeps its case ("" is a quote), an
// unquoted one is folded to lower case (ASCII letters only, as in UTF-8
// databases); names are cut to 63 bytes. A blank list is empty, not nil:
// only pg_catalog. ok is false on a syntax error.
func splitIdentifiers(s string) (names []string, ok bool) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i == len(s) {
		return []string{}, true // no schema at all, not the default
	}
	for {
		var name string
		if i == len(s) {
			return nil, false // a separator with no name after it
		}
		if s[i] == '"' {
			var b strings.Builder
			for i++; ; i++ {
				if i == len(s) {
					return nil, false
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
			}
			name = b.String()
		} else {
			start := i
			for i < len(s) && s[i] != ',' && !isSpace(s[i]) {
				i++
			}
			if i == start {
				return nil, false
			}
			name = asciiLower(s[start:i])
		}
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		names = append(names, rewrite.TruncateIdentifier(name))
		if i == len(s) {
			return names, true
		}
		if s[i] != ',' {
			return nil, false
		}
		for i++; i < len(s) && isSpace(s[i]); i++ {
		}
	}
}

func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
