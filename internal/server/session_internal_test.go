package server

import (
	"crypto/sha256"
	"testing"
	"time"
)

// A session ends SessionIdle after its last request and SessionLifetime
// after sign-in, however busy.
func TestSessionExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ss := newSessions()
	ss.now = func() time.Time { return now }
	tok := sha256.Sum256([]byte("token"))

	idle := ss.create(tok)
	now = now.Add(SessionIdle - time.Second)
	if ss.get(idle) == nil {
		t.Fatal("session ended before it was idle for SessionIdle")
	}
	now = now.Add(SessionIdle)
	if ss.get(idle) != nil {
		t.Fatal("session idle for SessionIdle still valid")
	}
	if ss.get(idle) != nil {
		t.Fatal("expired session came back")
	}

	busy := ss.create(tok)
	end := now.Add(SessionLifetime)
	for now = now.Add(SessionIdle / 2); now.Before(end); now = now.Add(SessionIdle / 2) {
		if ss.get(busy) == nil {
			t.Fatalf("busy session ended %s after sign-in", SessionLifetime-end.Sub(now))
		}
	}
	if ss.get(busy) != nil {
		t.Fatal("session valid after SessionLifetime")
	}
	if ss.get("not a session") != nil {
		t.Fatal("unknown session ID accepted")
	}
}

// The number of sessions is bounded: the least recently used one ends.
func TestSessionCap(t *testing.T) {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ss := newSessions()
	ss.now = func() time.Time { return now }
	tok := sha256.Sum256([]byte("token"))
	first := ss.create(tok)
	for range maxSessions {
		now = now.Add(time.Millisecond)
		ss.create(tok)
	}
	if len(ss.m) != maxSessions {
		t.Fatalf("%d sessions kept, want %d", len(ss.m), maxSessions)
	}
	if ss.get(first) != nil {
		t.Fatal("the least recently used session was kept over the cap")
	}
}
