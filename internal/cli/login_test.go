package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
)

// ssoServe runs a custody server signing people in through h, with the
// CLI's public client registered at h.
func ssoServe(t *testing.T, h *ssotest.Hydra) string {
	t.Helper()
	url := ssoServer(t, h)
	h.Client(t, "custody-cli", "", "http://127.0.0.1/callback")
	return url
}

// ssoServer runs a custody server signing people in through h, whose
// CLI client is registered already or by the caller.
func ssoServer(t *testing.T, h *ssotest.Hydra) string {
	t.Helper()
	p, err := sso.New(sso.Config{Issuer: h.Issuer, ClientID: "custody-cli", Roles: map[string]api.Role{
		"custody-admins": api.RoleAdmin, "custody-auditors": api.RoleAuditor}})
	if err != nil {
		t.Fatal(err)
	}
	return hydraServer(t, server.Config{SSO: p})
}

// hydraServer runs a custody server of cfg (in a new data directory
// unless cfg names one) on a loopback port, and returns its URL.
func hydraServer(t *testing.T, cfg server.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL, cfg.BatchMaxAge = "http://"+ln.Addr().String(), 5*time.Millisecond
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return cfg.PublicURL
}

// signInWithHydra makes custody login, for the rest of the test, sign in
// through hydra (ssotest.SignIn: as the person Hydra.SetUser names), with
// no CUSTODY_TOKEN and no $BROWSER.
func signInWithHydra(t *testing.T) {
	t.Setenv("CUSTODY_TOKEN", "")
	t.Setenv("BROWSER", "")
	open := ssotest.SignIn()
	old := openURL
	openURL = func(_ *streams, u string) error { open(u); return nil }
	t.Cleanup(func() { openURL = old })
}

// run runs custody with args and returns its exit code, stdout and stderr.
func runCustody(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

// custody login through hydra (loopback redirect, PKCE): the session is
// kept 0600 under XDG_CONFIG_HOME and used by commands against --server;
// admin commands need a sign-in with MFA; custody logout ends it.
func TestLoginHydra(t *testing.T) {
	h := ssotest.StartHydra(t)
	url := ssoServe(t, h)
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	signInWithHydra(t)

	h.SetUser(ssotest.User{Subject: "bob", Email: "bob@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd"}})
	code, out, errs := runCustody("login", "--server", url)
	if code != 0 || !strings.Contains(out, "signed in as bob@example.com via "+h.Issuer+" (without MFA: admin and approver actions will be refused), roles admin") {
		t.Fatalf("login = %d %q %q", code, out, errs)
	}
	files, _ := filepath.Glob(filepath.Join(cfg, "custody", "sessions", "*.json"))
	if len(files) != 1 {
		t.Fatalf("session files %v; want one", files)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, %v; want 0600", fi.Mode(), err)
	}
	code, _, errs = runCustody("token", "list", "--server", url)
	if code != ExitUsage || !strings.Contains(errs, "admin actions require multi-factor authentication") || !strings.Contains(errs, "custody login") {
		t.Errorf("token list without MFA = %d %q; want refused saying MFA is required and how", code, errs)
	}

	h.SetUser(ssotest.User{Subject: "alice", Email: "alice@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd", "otp"}})
	if code, out, errs := runCustody("login", "--server", url); code != 0 || !strings.Contains(out, "(with MFA)") {
		t.Fatalf("login with MFA = %d %q %q", code, out, errs)
	}
	if code, out, errs := runCustody("token", "list", "--server", url); code != 0 {
		t.Errorf("token list with MFA = %d %q %q", code, out, errs)
	}
	if code, out, errs := runCustody("logout", "--server", url); code != 0 || !strings.Contains(out, "signed out") {
		t.Fatalf("logout = %d %q %q", code, out, errs)
	}
	if files, _ := filepath.Glob(filepath.Join(cfg, "custody", "sessions", "*.json")); len(files) != 0 {
		t.Errorf("session kept after logout: %v", files)
	}
	if code, _, errs := runCustody("token", "list", "--server", url); code == 0 || !strings.Contains(errs, "custody login") {
		t.Errorf("token list after logout = %d %q; want refused", code, errs)
	}
}

// custody login against a server without single sign-on says so.
func TestLoginNoSSO(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	url := hydraServer(t, server.Config{})
	if code, _, errs := runCustody("login", "--server", url); code != ExitUsage || !strings.Contains(errs, "no single sign-on") {
		t.Errorf("login without SSO = %d %q", code, errs)
	}
}

// An ID token custody login obtained for one server is no session at
// another server of the same provider: a server the person was told to
// log in to (here one that keeps what custody login sends it) replays it
// at two real servers and is refused; the same person signs in at each
// of them.
func TestLoginBoundToServer(t *testing.T) {
	h := ssotest.StartHydra(t)
	a := ssoServe(t, h)
	b := ssoServer(t, h)
	var kept struct {
		sync.Mutex
		body []byte
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/sso": // the real servers' provider and CLI client
			json.NewEncoder(w).Encode(api.SSOInfo{Issuer: h.Issuer, ClientID: "custody-cli"})
		case "/api/v1/sessions":
			body, _ := io.ReadAll(r.Body)
			kept.Lock()
			kept.body = body
			kept.Unlock()
			json.NewEncoder(w).Encode(api.SessionAnswer{Session: "x", Identity: "bob@example.com", Issuer: h.Issuer})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(evil.Close)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	signInWithHydra(t)
	h.SetUser(ssotest.User{Subject: "bob", Email: "bob@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd", "otp"}})

	if code, out, errs := runCustody("login", "--server", evil.URL); code != 0 {
		t.Fatalf("login at the other server = %d %q %q", code, out, errs)
	}
	kept.Lock()
	stolen := kept.body
	kept.Unlock()
	var req api.SessionRequest
	if err := json.Unmarshal(stolen, &req); err != nil || req.IDToken == "" || req.Binding == "" {
		t.Fatalf("custody login sent %q; want an ID token and its binding", stolen)
	}
	for _, srv := range []string{a, b} {
		resp, err := http.Post(srv+"/api/v1/sessions", "application/json", bytes.NewReader(stolen))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(answer), "obtained for another custody server") {
			t.Errorf("the other server's ID token at %s = %d %q; want 401", srv, resp.StatusCode, answer)
		}
	}
	for _, srv := range []string{a, b} {
		if code, out, errs := runCustody("login", "--server", srv); code != 0 || !strings.Contains(out, "signed in as bob@example.com") {
			t.Errorf("login at %s = %d %q %q", srv, code, out, errs)
		}
	}
}
