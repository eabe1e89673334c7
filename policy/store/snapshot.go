package store

import (
	"cmp"
	"slices"
	"time"

	"github.com/mandate-proxy/mandate/policy"
)

// Snapshot is an immutable view of the live policy state as of one
// consistent read. Lookups are map reads with no locks. Everything it returns
// is shared with other readers and must not be modified.
type Snapshot struct {
	version    uint64
	generation int64
	loadedAt   time.Time // State clock when the read that built it began

	byPair  map[pair][]*policy.Delegation // unrevoked, not yet expired at load; newest first
	byID    map[string]*policy.Delegation // the above plus recently revoked ones
	agents  map[string]*policy.Agent      // enabled registrations only
	purpose map[string][]string           // purpose → consenting subjects, sorted
	subject map[string][]string           // subject → consented purposes, sorted
}

type pair struct{ grantor, delegate string }

// newSnapshot indexes what one read returned. Revoked delegations are kept
// only by id (for RevokedAt); agents arrive enabled-only.
func newSnapshot(generation int64, loadedAt time.Time, ds []policy.Delegation, consents [][2]string, as []policy.Agent) *Snapshot {
	s := &Snapshot{
		generation: generation,
		loadedAt:   loadedAt,
		byPair:     make(map[pair][]*policy.Delegation),
		byID:       make(map[string]*policy.Delegation, len(ds)),
		agents:     make(map[string]*policy.Agent, len(as)),
		purpose:    make(map[string][]string),
		subject:    make(map[string][]string),
	}
	for i := range ds {
		d := &ds[i]
		s.byID[d.ID] = d
		if d.RevokedAt.IsZero() {
			k := pair{d.Grantor, d.Delegate}
			s.byPair[k] = append(s.byPair[k], d)
		}
	}
	for _, list := range s.byPair {
		slices.SortFunc(list, func(a, b *policy.Delegation) int {
			return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
		})
	}
	for i := range as {
		s.agents[as[i].ID] = &as[i]
	}
	for _, c := range consents {
		sub, pur := c[0], c[1]
		s.subject[sub] = append(s.subject[sub], pur)
		s.purpose[pur] = append(s.purpose[pur], sub)
	}
	// Clip so that a caller's append can never write into shared storage.
	for k, v := range s.subject {
		slices.Sort(v)
		s.subject[k] = slices.Clip(v)
	}
	for k, v := range s.purpose {
		slices.Sort(v)
		s.purpose[k] = slices.Clip(v)
	}
	return s
}

// Version identifies this snapshot's content: a later snapshot with
// different content has a larger version. Use it as a cache key.
func (s *Snapshot) Version() uint64 { return s.version }

// LoadedAt is when the read that built this snapshot began (State clock).
func (s *Snapshot) LoadedAt() time.Time { return s.loadedAt }

// Delegation returns the delegation that lets delegate act for grantor at
// now for purpose ("" when the statement declares none), or nil. When
// several are active at once, the most recently created that counts for
// purpose (one for that purpose or for any) wins, ties broken by id: a
// newer grant is the grantor's latest word, and the choice is the same on
// every replica. When none counts for purpose, the newest active one is
// returned, for the engine to refuse with its reason. Call it per
// statement; a revoked delegation is never returned, whatever the clocks
// say.
func (s *Snapshot) Delegation(grantor, delegate, purpose string, now time.Time) *policy.Delegation {
	var newest *policy.Delegation
	for _, d := range s.byPair[pair{grantor, delegate}] {
		if !d.Active(now) {
			continue
		}
		if purpose == "" || d.Purpose == "" || d.Purpose == purpose {
			return d
		}
		if newest == nil {
			newest = d
		}
	}
	return newest
}

// Delegations returns every unrevoked delegation from grantor to delegate
// that had not expired when the snapshot was read, future ones included,
// newest first.
func (s *Snapshot) Delegations(grantor, delegate string) []*policy.Delegation {
	return s.byPair[pair{grantor, delegate}]
}

// DelegationByID returns a delegation by id, including one revoked within
// Config.RevokedRetention, or nil.
func (s *Snapshot) DelegationByID(id string) *policy.Delegation { return s.byID[id] }

// RevokedAt reports when delegation id was revoked, if this snapshot knows
// it to be revoked (within Config.RevokedRetention). The proxy subtracts it
// from the time it first refuses a statement under that delegation to
// measure revocation propagation.
func (s *Snapshot) RevokedAt(id string) (time.Time, bool) {
	d := s.byID[id]
	if d == nil || d.RevokedAt.IsZero() {
		return time.Time{}, false
	}
	return d.RevokedAt, true
}

// Agent returns agent id's registration, or nil when it is unknown or
// disabled. Callers still check Agent.Active for the subject.
func (s *Snapshot) Agent(id string) *policy.Agent { return s.agents[id] }

// Consents returns the purposes subject currently consents to, sorted.
func (s *Snapshot) Consents(subject string) []string { return s.subject[subject] }

// HasConsent reports whether subject currently consents to purpose.
func (s *Snapshot) HasConsent(subject, purpose string) bool {
	_, ok := slices.BinarySearch(s.subject[subject], purpose)
	return ok
}

// ConsentedSubjects returns the subjects currently consenting to purpose,
// sorted.
func (s *Snapshot) ConsentedSubjects(purpose string) []string { return s.purpose[purpose] }
