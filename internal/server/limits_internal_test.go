package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// Builders cannot take the write slots kept for admins: with every shared
// slot held, a builder's write gets 503 with Retry-After and an admin's is
// served.
func TestWritePool(t *testing.T) {
	dir := t.TempDir()
	s := &Server{cfg: Config{MaxBody: 1 << 10}, metrics: newMetrics(), writes: newPool(4, 1),
		tokens: newTokenStore(state.Dir(dir), slog.New(slog.DiscardHandler))}
	infos := map[api.Role]*TokenInfo{}
	for _, role := range api.Roles() {
		tok, err := tokenfile.CreateToken(dir, role, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if infos[role], err = s.tokens.lookup(tok); err != nil {
			t.Fatal(err)
		}
	}
	hold := make(chan struct{})
	var started, done sync.WaitGroup
	h := s.write(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-hold
		w.WriteHeader(http.StatusOK)
	})
	send := func(role api.Role) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/sign", strings.NewReader("{}"))
		r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, infos[role]))
		rec := httptest.NewRecorder()
		h(rec, r)
		return rec
	}
	for range 3 {
		started.Add(1)
		done.Add(1)
		go func() { defer done.Done(); send(api.RoleBuilder) }()
	}
	started.Wait()
	for _, role := range []api.Role{api.RoleBuilder, api.RoleDeployer, api.RoleApprover} {
		if rec := send(role); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s write with the shared slots taken: %d, Retry-After %q", role, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	started.Add(1)
	adm := make(chan int)
	go func() { adm <- send(api.RoleAdmin).Code }()
	started.Wait() // the admin's handler runs
	close(hold)
	if code := <-adm; code != http.StatusOK {
		t.Errorf("admin write with the shared slots taken: %d", code)
	}
	done.Wait()
	started.Add(1)
	if rec := send(api.RoleBuilder); rec.Code != http.StatusOK {
		t.Errorf("builder write once the slots are free: %d", rec.Code)
	}
}
