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
//
// Sync keeps its connection between calls. When that fails, a fresh one
// is tried at once: a connection that died alone (terminated, dropped by a
// firewall) must not let one statement pass unsynced. When the fresh one
// fails too, the store is taken to be down, and for a backoff (MinBackoff,
// doubling up to MaxBackoff) Sync answers with that error without trying,
// so that every statement of a partition does not wait out a timeout.
func (s *State) Sync(ctx context.Context) error {
	arrived := time.Now()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.lastSync.After(arrived) {
		return nil
	}
	if time.Now().Before(s.syncRetry) {
		return s.syncErr
	}
	begun := time.Now()
	reused := s.syncConn != nil
	err := s.syncOnce(ctx)
	if err != nil && reused && ctx.Err() == nil {
		err = s.syncOnce(ctx)
	}
	if err != nil {
		s.syncFailures = min(s.syncFailures+1, 16)
		s.syncRetry = time.Now().Add(min(s.cfg.MinBackoff<<(s.syncFailures-1), s.cfg.MaxBackoff))
		s.syncErr = err
		return err
	}
	s.syncFailures, s.syncRetry, s.syncErr = 0, time.Time{}, nil
	s.lastSync = begun
	return nil
}

// syncOnce reads the generation over Sync's connection, opening one when
// there is none, and drops the connection when it fails.
func (s *State) syncOnce(ctx context.Context) error {
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
