package server

import (
	"context"
	"crypto"
	"crypto/hmac"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// Dashboard files in the data directory, read again for every page.
const (
	policiesDir    = "policies"     // DIR/policies/*.yaml: environments' policies
	trustedKeysDir = "keys/trusted" // DIR/keys/trusted/*.pub: approver, scanner, ... keys
	uiLoginPath    = "/ui/login"
)

// UIDeps is what Config.UI gets to build the dashboard from.
type UIDeps struct {
	Index IndexReader
	Log   *tlog.Log
	// Witnesses verify witness cosignatures (Config.Witnesses).
	Witnesses []note.Verifier
	// LogHistory lists the sizes of the checkpoints the log published.
	LogHistory func() ([]uint64, error)
	// TrustedRoot is the server's trusted_root.json (its log and TSA).
	TrustedRoot []byte
	// Keys returns the keys to trust besides the trusted root: every
	// builder key and every DIR/keys/trusted/*.pub, read again on every
	// call.
	Keys func() ([]crypto.PublicKey, error)
	// TrustRoot returns the newest custody trust root the server accepted
	// (nil: none), asked again on every call: a pushed version replaces
	// it. Its keys are trusted only inside their effective windows
	// (rotation, CompromisedSince), also where Keys lists them.
	TrustRoot func() *trust.Document
	// Policies returns the policies in DIR/policies/*.yaml by environment,
	// read again on every call.
	Policies func() (map[string]*policy.Policy, error)
	// Incidents lists incident records (store.SQLite.Incidents: in ID order,
	// paged by q.AfterID and q.Limit). Nil: the dashboard says incidents
	// are not available.
	Incidents func(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error)
	// Registry is the registry served at /metrics to anyone.
	Registry *prometheus.Registry
	// Restricted is the registry served at /metrics only to auditor and
	// admin tokens: series about incidents and quarantine.
	Restricted *prometheus.Registry
	// DecisionSigners returns the key IDs that sign admission decisions
	// for deployers: the audit key's.
	DecisionSigners func() []string
	// RedFlagSigners returns the key IDs whose red flags statements
	// count on the dashboard: the audit key's, which signs them.
	RedFlagSigners func() []string
	Logger         *slog.Logger
}

func (s *Server) uiDeps() UIDeps {
	return UIDeps{Index: s.index, Log: s.log, Witnesses: s.cfg.Witnesses, LogHistory: s.checkpointSizes,
		TrustedRoot: s.TrustedRoot(), Keys: s.dashboardKeys, TrustRoot: s.TrustRootDocument, Policies: s.dashboardPolicies, Incidents: s.index.Incidents,
		Registry: s.metrics.reg, Restricted: s.metrics.restricted, Logger: s.logger, DecisionSigners: s.decisionSigners,
		RedFlagSigners: s.decisionSigners}
}

// checkpointSizes lists the sizes of the checkpoints the log published.
func (s *Server) checkpointSizes() ([]uint64, error) {
	return s.log.CheckpointSizes(context.Background())
}

// dashboardKeys returns the audit key, every builder public key and every
// public key in DIR/keys/trusted, read now. (The audit key lets the
// server's own audit entries verify on artifact pages; policies decide on
// provenance by builder and signer, so trusting it there allows nothing.)
func (s *Server) dashboardKeys() ([]crypto.PublicKey, error) {
	pubs := []crypto.PublicKey{s.auditKey.Public()}
	for _, k := range s.builders {
		pubs = append(pubs, k.Public())
	}
	files, err := filepath.Glob(filepath.Join(s.cfg.Dir, trustedKeysDir, "*.pub"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("couldn't read trusted key: %w", err)
		}
		pub, err := signer.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", filepath.Base(f), err)
		}
		pubs = append(pubs, pub)
	}
	return pubs, nil
}

// dashboardPolicies reads DIR/policies/*.yaml, by environment (a pushed
// policy as signed: dashboardPolicy).
func (s *Server) dashboardPolicies() (map[string]*policy.Policy, error) {
	ctx := context.Background()
	names, err := s.state.List(ctx, policiesDir+"/")
	if err != nil {
		return nil, err
	}
	out := map[string]*policy.Policy{}
	for _, f := range names {
		if path.Dir(f) != policiesDir || !strings.HasSuffix(f, ".yaml") {
			continue
		}
		b, err := s.state.Get(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("couldn't read policy: %w", err)
		}
		p, err := s.dashboardPolicy(f, b)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", filepath.Base(f), err)
		}
		if _, dup := out[p.Environment]; dup {
			return nil, fmt.Errorf("two policies for environment %s", p.Environment)
		}
		out[p.Environment] = p
	}
	return out, nil
}

// uiRole reports whether a token role may read the dashboard.
func uiRole(r api.Role) bool { return r == api.RoleAuditor || r == api.RoleAdmin }

// uiAuth admits dashboard requests of an auditor or admin: with
// "Authorization: Bearer TOKEN", or in a session the form at /ui/login
// started (session.go). A browser without one is sent to the login form.
func (s *Server) uiAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); bearer {
			s.auth(h.ServeHTTP, api.RoleAuditor, api.RoleAdmin)(w, r)
			return
		}
		r2, ok, err := s.sessionAuth(r)
		switch {
		case err != nil:
			s.logger.Error("couldn't authenticate", "err", err)
			fail(w, http.StatusInternalServerError, "couldn't check token")
		case !ok:
			http.Redirect(w, r, uiLoginPath, http.StatusSeeOther)
		default:
			h.ServeHTTP(w, r2)
		}
	})
}

// loginPage is parsed on first use, not at every start of every command.
var loginPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · custody</title><link rel="stylesheet" href="/ui/static/style.css"></head>
<body><main><h1>custody dashboard</h1>
{{with .Msg}}<p class="status fail">{{.}}</p>{{end}}
{{with .SSO}}<p><a id="sso" class="button" href="/ui/sso/start">Sign in with {{.}}</a></p>{{end}}
<form class="search" method="post" action="/ui/login">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="token">Auditor or admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button></form></main></body></html>`))
})

// showLogin renders the login form with status code and message msg, bound
// to a new login cookie.
func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	v := randomID()
	s.setCookie(w, r, loginCookie, v, uiLoginPath, 3600)
	w.WriteHeader(code)
	var provider string
	if s.cfg.SSO != nil {
		provider = s.cfg.SSO.Config().Issuer
	}
	loginPage().Execute(w, struct{ Msg, CSRF, SSO string }{msg, s.sessions.loginCSRF(v), provider})
}

// serveLogin shows the login form (GET) or, for a form from this origin
// with its CSRF token, checks the token and starts a session (POST).
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'")
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		s.showLogin(w, r, http.StatusOK, "")
		return
	}
	ok := s.checkForm(w, r, func(tok string) bool {
		c, err := r.Cookie(loginCookie)
		return err == nil && hmac.Equal([]byte(tok), []byte(s.sessions.loginCSRF(c.Value)))
	})
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	info, err := s.tokens.lookup(strings.TrimSpace(r.PostForm.Get("token")))
	switch {
	case err != nil && !tokenRefused(err):
		s.logger.Error("couldn't authenticate", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't check token")
		return
	case err != nil || !uiRole(info.Role):
		s.showLogin(w, r, http.StatusUnauthorized, "That is not a valid auditor or admin token.")
		return
	}
	id, err := s.sessions.create(r.Context(), info.hash)
	if err != nil {
		s.logger.Error("couldn't start session", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't start session")
		return
	}
	s.setCookie(w, r, sessionCookie, id, "/ui/", int(SessionLifetime.Seconds()))
	s.setCookie(w, r, loginCookie, "", uiLoginPath, -1)
	s.setCookie(w, r, legacyCookie, "", "/ui/", -1)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// decisionSigners is the key ID of the audit key, which signs the
// decisions (VSAs) deployers have signed (the admission webhook's).
func (s *Server) decisionSigners() []string {
	id, err := keyid.Of(s.auditKey.Public())
	if err != nil {
		return nil
	}
	return []string{id.String()}
}
