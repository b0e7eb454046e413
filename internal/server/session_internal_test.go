package server

import (
	"crypto/sha256"
	"testing"
	"time"
)

func create(t *testing.T, ss *sessions, tok [sha256.Size]byte) string {
	t.Helper()
	id, err := ss.create(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func get(t *testing.T, ss *sessions, id string) *Session {
	t.Helper()
	s, err := ss.get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A session ends SessionIdle after its last request and SessionLifetime
// after sign-in, however busy.
func TestSessionExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ss := newSessions(nil)
	ss.now = func() time.Time { return now }
	tok := sha256.Sum256([]byte("token"))

	idle := create(t, ss, tok)
	now = now.Add(SessionIdle - time.Second)
	if get(t, ss, idle) == nil {
		t.Fatal("session ended before it was idle for SessionIdle")
	}
	now = now.Add(SessionIdle)
	if get(t, ss, idle) != nil {
		t.Fatal("session idle for SessionIdle still valid")
	}
	if get(t, ss, idle) != nil {
		t.Fatal("expired session came back")
	}

	busy := create(t, ss, tok)
	end := now.Add(SessionLifetime)
	for now = now.Add(SessionIdle / 2); now.Before(end); now = now.Add(SessionIdle / 2) {
		if get(t, ss, busy) == nil {
			t.Fatalf("busy session ended %s after sign-in", SessionLifetime-end.Sub(now))
		}
	}
	if get(t, ss, busy) != nil {
		t.Fatal("session valid after SessionLifetime")
	}
	if get(t, ss, "not a session") != nil {
		t.Fatal("unknown session ID accepted")
	}
}

// The number of sessions is bounded: the least recently used one ends.
func TestSessionCap(t *testing.T) {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ss := newSessions(nil)
	ss.now = func() time.Time { return now }
	tok := sha256.Sum256([]byte("token"))
	first := create(t, ss, tok)
	for range maxSessions {
		now = now.Add(time.Millisecond)
		create(t, ss, tok)
	}
	if len(ss.store.(*memSessions).m) != maxSessions {
		t.Fatalf("%d sessions kept, want %d", len(ss.store.(*memSessions).m), maxSessions)
	}
	if get(t, ss, first) != nil {
		t.Fatal("the least recently used session was kept over the cap")
	}
}
