package server

import (
	"crypto/sha256"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestSessionSweeperBounded: each sweep of the shared sessions reads at
// most its bound of documents, going on where the last one stopped, so
// that a few sweeps delete every ended session (sign-ins in progress,
// sessions ended by age or idleness) and none that is live; documents
// that do not parse and other names are left alone. The clock is the
// sweep's argument. On the data directory's store and, with
// CUSTODY_TEST_POSTGRES, on PostgreSQL's (the replicas').
func TestSessionSweeperBounded(t *testing.T) {
	stores := map[string]func(t *testing.T) state.Store{
		"dir": func(t *testing.T) state.Store { return state.Dir(t.TempDir()) },
	}
	if os.Getenv("CUSTODY_TEST_POSTGRES") != "" {
		stores["postgres"] = func(t *testing.T) state.Store {
			pg := storetest.OpenPostgres(t)
			t.Cleanup(func() { pg.Close() })
			st, err := pg.State(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			st := open(t)
			ss := stateSessions{st}
			t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
			put := func(i int, s *Session) [sha256.Size]byte {
				t.Helper()
				key := sha256.Sum256(fmt.Appendf(nil, "session %d", i))
				if err := ss.Put(ctx, key, s); err != nil {
					t.Fatal(err)
				}
				return key
			}
			var live [][sha256.Size]byte
			for i := range 12 {
				switch i % 4 {
				case 0, 1: // sign-ins in progress, ended at t0+10m
					put(i, &Session{Login: &pendingLogin{Return: "/ui/"}, Created: t0, LastSeen: t0, Expires: t0.Add(10 * time.Minute)})
				case 2: // idle since t0-1h
					put(i, &Session{Created: t0.Add(-time.Hour), LastSeen: t0.Add(-time.Hour), Expires: t0.Add(7 * time.Hour), Idle: 30 * time.Minute})
				case 3: // live for 8 hours
					live = append(live, put(i, &Session{Created: t0, LastSeen: t0, Expires: t0.Add(8 * time.Hour)}))
				}
			}
			for _, n := range []string{"sessions/zz-malformed", "sessions.key", "tokens"} {
				if err := st.Put(ctx, n, []byte("{not a session")); err != nil {
					t.Fatal(err)
				}
			}
			sw := &sessionSweeper{ss: ss, page: 2, max: 5}
			sweep := func(now time.Time) int {
				t.Helper()
				deleted, read, err := sw.sweep(ctx, now)
				if err != nil {
					t.Fatal(err)
				}
				if read > 5 {
					t.Fatalf("a sweep read %d documents; bound 5", read)
				}
				return deleted
			}
			total := 0
			for range 3 { // 13 documents, 5 a sweep
				total += sweep(t0)
			}
			if total != 3 {
				t.Errorf("sweeps at t0 deleted %d; want the 3 idle sessions", total)
			}
			total = 0
			for range 3 {
				total += sweep(t0.Add(11 * time.Minute))
			}
			if total != 6 {
				t.Errorf("sweeps after the sign-ins ended deleted %d; want their 6", total)
			}
			names, err := st.List(ctx, "sessions")
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != len(live)+2 {
				t.Errorf("left %q; want the %d live sessions, the malformed one and sessions.key", names, len(live))
			}
			for _, k := range live {
				if s, err := ss.Get(ctx, k, t0.Add(time.Hour)); s == nil || err != nil {
					t.Errorf("a live session is gone: %v", err)
				}
			}
			if b, _ := st.Get(ctx, "tokens"); string(b) != "{not a session" {
				t.Error("the sweep touched a document that is not a session")
			}
		})
	}
}
