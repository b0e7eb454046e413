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
	}
	return nil
}
