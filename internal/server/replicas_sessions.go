package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/custody-dev/custody/internal/state"
)

// stateSessions is the SessionStore of replicas: sessions are documents
// sessions/HEX-KEY of the shared state, so that a sign-in on one replica
// is a session on all of them, and a sign-out or a revoked token ends it
// on all of them.
type stateSessions struct{ st state.Store }

// sessionSeenEvery is how stale a session's LastSeen may be before Get
// writes it back (one write per session per interval, not per request);
// idle timeouts are that much coarser.
const sessionSeenEvery = 15 * time.Second

func sessionName(key [sha256.Size]byte) string { return "sessions/" + hex.EncodeToString(key[:]) }

func (ss stateSessions) Put(ctx context.Context, key [sha256.Size]byte, s *Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	name := sessionName(key)
	if ok, err := ss.st.Create(ctx, name, b); ok || err != nil {
		return err
	}
	old, err := ss.get(ctx, name)
	if err != nil {
		return err
	}
	if old != nil && !old.Expired(s.Created) {
		return ErrSessionExists
	}
	return ss.st.Put(ctx, name, b)
}

func (ss stateSessions) get(ctx context.Context, name string) (*Session, error) {
	b, err := ss.st.Get(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stored session: %w", err)
	}
	return &s, nil
}

func (ss stateSessions) Get(ctx context.Context, key [sha256.Size]byte, now time.Time) (*Session, error) {
	name := sessionName(key)
	s, err := ss.get(ctx, name)
	if err != nil || s == nil {
		return nil, err
	}
	if s.Expired(now) {
		return nil, ss.st.Delete(ctx, name)
	}
	if now.Sub(s.LastSeen) >= sessionSeenEvery {
		s.LastSeen = now
		if b, err := json.Marshal(s); err == nil {
			ss.st.Put(ctx, name, b) // best effort: only the idle clock
		}
	}
	return s, nil
}

func (ss stateSessions) Delete(ctx context.Context, key [sha256.Size]byte) error {
	return ss.st.Delete(ctx, sessionName(key))
}

// Sessions in the shared state are deleted when read after they ended
// (Get), and by a sweep (sessionSweeper) for those never read again:
// every sign-in anyone starts at /ui/sso/start is a document, and most
// are never finished.
const (
	// sessionSweepEvery is how often a replica sweeps (when no other
	// replica is sweeping).
	sessionSweepEvery = time.Minute
	// sessionSweepPage and sessionSweepMax bound a sweep's work: it reads
	// pages of sessionSweepPage documents, at most sessionSweepMax in all,
	// going on from where the last sweep stopped.
	sessionSweepPage = 500
	sessionSweepMax  = 10_000
)

// sessionSweeper deletes ended sessions of the shared state, a bounded
// number of documents per sweep.
type sessionSweeper struct {
	ss    stateSessions
	page  int    // documents per ListAfter page
	max   int    // documents read per sweep
	after string // where the next sweep goes on ("": from the first)
}

// sweep reads at most sw.max session documents from where the last sweep
// stopped (wrapping to the first after the last) and deletes those that
// ended at now. It returns how many it deleted and read. A document that
// does not parse is left as it is (Get reports it). A session replaced
// between its read and its delete is a key used twice, which random
// session IDs and ID tokens never are.
func (sw *sessionSweeper) sweep(ctx context.Context, now time.Time) (deleted, read int, err error) {
	for read < sw.max {
		want := min(sw.page, sw.max-read)
		names, err := sw.ss.st.ListAfter(ctx, "sessions/", sw.after, want)
		if err != nil {
			return deleted, read, fmt.Errorf("couldn't list sessions: %w", err)
		}
		for _, name := range names {
			read++
			sw.after = name
			s, err := sw.ss.get(ctx, name)
			if err != nil || s == nil || !s.Expired(now) {
				continue // malformed, gone meanwhile, or live
			}
			if err := sw.ss.st.Delete(ctx, name); err != nil {
				return deleted, read, fmt.Errorf("couldn't delete an ended session: %w", err)
			}
			deleted++
		}
		if len(names) < want {
			sw.after = "" // the end: the next sweep starts from the first
			break
		}
	}
	return deleted, read, nil
}

// sweepSessions runs one sweep of the shared sessions at now, under the
// lock sessions-sweep (one replica at a time), and says how many it
// deleted (log line and custody_sessions_swept_total).
func (s *Server) sweepSessions(ctx context.Context, now time.Time) {
	if s.sessionSweep == nil {
		return
	}
	release, ok, err := s.state.TryLock(ctx, "sessions-sweep")
	if err != nil || !ok {
		return
	}
	defer release()
	deleted, read, err := s.sessionSweep.sweep(ctx, now)
	s.metrics.sessionsSwept.Add(float64(deleted))
	if err != nil {
		s.logger.Warn("session sweep failed; retrying later", "deleted", deleted, "read", read, "err", err)
		return
	}
	if deleted > 0 {
		s.logger.Info("swept ended sessions", "deleted", deleted, "read", read)
	}
}

// sharedSessionKey returns the key that MACs the sign-in form's CSRF
// tokens, the same on every replica (the first to start makes it).
func sharedSessionKey(ctx context.Context, st state.Store) ([32]byte, error) {
	var k [32]byte
	rand.Read(k[:])
	if _, err := st.Create(ctx, "sessions.key", k[:]); err != nil {
		return k, err
	}
	b, err := st.Get(ctx, "sessions.key")
	if err == nil && len(b) != len(k) {
		err = errors.New("stored sessions.key is malformed")
	}
	copy(k[:], b)
	return k, err
}

// shareSessions makes the sessions of a replica the shared ones.
func (s *Server) shareSessions(ctx context.Context) error {
	if !s.state.Shared() {
		return nil
	}
	k, err := sharedSessionKey(ctx, s.state)
	if err != nil {
		return fmt.Errorf("couldn't read the sessions' key: %w", err)
	}
	s.sessions.key = k
	if s.cfg.Sessions == nil {
		s.sessions.store = stateSessions{s.state}
		s.sessionSweep = &sessionSweeper{ss: stateSessions{s.state}, page: sessionSweepPage, max: sessionSweepMax}
	}
	return nil
}
