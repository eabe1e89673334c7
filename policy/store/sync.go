package store

import (
	"context"
	"time"
)

// Sync makes the state current as of the call: it asks the store for its
// generation (one round trip) and re-reads only if it moved. This is what
// makes a revocation or a withdrawn consent apply to the very next
// statement even when the notification is still on its way.
//
// Concurrent callers share round trips: a caller waits for the sync in
// progress and is answered by it only if it began after the caller
// arrived (an earlier one may predate a change the caller must see);
// otherwise it runs the next one. On error the caller keeps the snapshot it
// has, which Check still bounds by MaxStaleness.
func (s *State) Sync(ctx context.Context) error {
	arrived := time.Now()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.lastSync.After(arrived) {
		return nil
	}
	begun := time.Now()
	if s.syncConn == nil {
		conn, err := s.connect(ctx, nil)
		if err != nil {
			return err
		}
		s.syncConn = conn
	}
	if err := s.read(ctx, s.syncConn, false); err != nil {
		closeConn(s.syncConn)
		s.syncConn = nil
		return err
	}
	s.lastSync = begun
	return nil
}

// Close releases Sync's connection. Watch ends with its context.
func (s *State) Close() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.syncConn != nil {
		closeConn(s.syncConn)
		s.syncConn = nil
	}
}
