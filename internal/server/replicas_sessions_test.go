package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/ssotest"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestSessionSweepOnReplicas: with replicas' shared state in PostgreSQL,
// every anonymous GET /ui/sso/start is a row; the periodic sweep deletes
// those that ended without being read again, keeps a person's live
// session, and says how many it deleted in its log and in
// custody_sessions_swept_total. The clock is the sweep's argument.
func TestSessionSweepOnReplicas(t *testing.T) {
	ctx := t.Context()
	pg := storetest.OpenPostgres(t)
	t.Cleanup(func() { pg.Close() })
	st, err := pg.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	iss := ssotest.NewIssuer(t)
	var logs syncBuffer
	dir := t.TempDir()
	replicaKeys(t, []string{dir}, "log", "tsa", "audit", "builder")
	ts := start(t, server.Config{Dir: dir, Index: pg, State: st, SSO: ssoProvider(t, iss.URL, ""), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		UI: func(server.UIDeps) (http.Handler, error) { return http.NotFoundHandler(), nil }})
	c := iss.CLIClaims(cliClient, ts.url)
	c["groups"] = []string{"custody-auditors"}
	code, sess := exchange(t, ts.url, iss.Sign(t, c))
	if code != http.StatusOK {
		t.Fatalf("exchange = %d %s", code, sess)
	}
	rows := func() int {
		t.Helper()
		names, err := st.List(ctx, "sessions/")
		if err != nil {
			t.Fatal(err)
		}
		return len(names)
	}
	before := rows()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const starts = 30
	for range starts {
		resp, err := noRedirect.Get(ts.url + "/ui/sso/start")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := rows(); n != before+starts {
		t.Fatalf("session rows after %d sign-in starts = %d; want %d", starts, n, before+starts)
	}
	ts.SweepSessions(ctx, time.Now())
	if n := rows(); n != before+starts {
		t.Errorf("a sweep before anything ended left %d rows; want %d", n, before+starts)
	}
	ts.SweepSessions(ctx, time.Now().Add(11*time.Minute)) // the sign-ins ended after 10 minutes
	if n := rows(); n != before {
		t.Errorf("after the sweep: %d session rows; want the %d of the person's sign-in", n, before)
	}
	if !strings.Contains(logs.String(), "swept ended sessions") || !strings.Contains(logs.String(), "deleted=30") {
		t.Errorf("no log line says 30 were swept:\n%s", logs.String())
	}
	if a := do(t, ts, http.MethodGet, "/metrics", "", nil); !strings.Contains(a.body, "custody_sessions_swept_total 30\n") {
		t.Errorf("/metrics does not count the 30 swept sessions")
	}
	if code, body := call(t, ts.url, "GET", "/api/v1/evidence?limit=1", sess, nil); code != http.StatusOK {
		t.Errorf("the person's session after the sweep = %d %q; want it kept", code, body)
	}
}
