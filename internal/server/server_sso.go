package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/sso"
)

// Sign-in through the organisation's OIDC provider (Config.SSO). Who may
// call what:
//
//	GET  /ui/sso/start       anyone: starts a dashboard sign-in (state,
//	                         nonce, PKCE verifier kept server-side under a
//	                         random binding cookie) and redirects to the provider
//	GET  /ui/sso/callback    the browser that started it (binding cookie):
//	                         one use; the code is exchanged with the verifier
//	                         and the ID token verified (aud, nonce, expiry)
//	GET  /api/v1/sso         anyone: the issuer and the CLI's client ID
//	POST /api/v1/sessions    anyone holding a fresh ID token issued to the CLI's
//	                         client: exchanged once for a session secret
//	POST /api/v1/sessions/end  the session's holder: ends it
//
// A person's roles come from the groups claim of the signed ID token
// only; admin and approver actions need a session whose token showed
// multi-factor authentication (requireRole).
const (
	ssoStartPath    = "/ui/sso/start"
	ssoCallbackPath = "/ui/sso/callback"
	ssoCookie       = "custody_sso" // binds a sign-in in progress to its browser
	ssoLoginTTL     = 10 * time.Minute
	// SessionPrefix starts the session secrets POST /api/v1/sessions
	// hands out; they are sent as bearer tokens.
	SessionPrefix  = "custody-session."
	maxIDTokenBody = 16 << 10
)

// Person names who signed in through the OIDC provider, for audit entries.
type Person struct {
	Identity, Issuer string
	// Session is the short form of the session ID (shortSession).
	Session string
	MFA     bool
	AMR     []string
	Roles   []api.Role
}

// personInfo is the request holder of a session of person p with ID id,
// acting in role (the first of roles); nil when roles is empty.
func personInfo(p *sso.Identity, id string, roles []api.Role) *TokenInfo {
	if len(roles) == 0 {
		return nil
	}
	short := shortSession(id)
	return &TokenInfo{Role: roles[0], Name: p.Name(), ID: short, sid: id,
		Person: &Person{Identity: p.Name(), Issuer: p.Issuer, Session: short, MFA: p.MFA, AMR: p.AMR, Roles: p.Roles}}
}

// uiRoles are p's dashboard roles, admin first.
func uiRoles(p *sso.Identity) []api.Role {
	var out []api.Role
	for _, r := range []api.Role{api.RoleAdmin, api.RoleAuditor} {
		if p.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

// mfaRefusal is the message for a person without MFA asking for an
// action of role r.
func mfaRefusal(p *Person, r api.Role) string {
	amr := "none"
	if len(p.AMR) > 0 {
		amr = strings.Join(p.AMR, ",")
	}
	return fmt.Sprintf("%s actions require multi-factor authentication: %s signed in at %s without it (amr %s); "+
		"sign in again with a second factor (custody login, or Sign in on the dashboard)", r, p.Identity, p.Issuer, amr)
}

// personAuth authenticates a request carrying a session secret (CLI) as
// bearer token, for an action that one of roles may do. It answers the
// refusals itself.
func (s *Server) personAuth(w http.ResponseWriter, r *http.Request, secret string, roles []api.Role) (*http.Request, bool) {
	sess, err := s.sessions.get(r.Context(), secret)
	switch {
	case err != nil:
		s.logger.Error("couldn't read session", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't check session")
		return nil, false
	case sess == nil || sess.Person == nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="custody", error="invalid_token"`)
		fail(w, http.StatusUnauthorized, "session expired or ended: run custody login again")
		return nil, false
	}
	role, ok := pickRole(sess.Person, roles)
	info := personInfo(sess.Person, secret, []api.Role{role})
	switch {
	case !ok && role != "":
		fail(w, http.StatusForbidden, mfaRefusal(info.Person, role))
		return nil, false
	case !ok:
		fail(w, http.StatusForbidden, fmt.Sprintf("%s (roles from %s: %s) may not do this", sess.Person.Name(), sess.Person.Issuer, roleList(sess.Person.Roles)))
		return nil, false
	}
	return r.WithContext(withToken(r.Context(), info)), true
}

// recheckSession checks, once a write's body is read and it holds a
// slot, that the person's session still exists. It answers the refusal
// itself.
func (s *Server) recheckSession(w http.ResponseWriter, r *http.Request, was *TokenInfo) bool {
	sess, err := s.sessions.get(r.Context(), was.sid)
	switch {
	case err != nil:
		s.logger.Error("couldn't read session", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't check session")
		return false
	case sess == nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="custody", error="invalid_token"`)
		fail(w, http.StatusUnauthorized, "session ended during the request: run custody login again")
		return false
	}
	return true
}

// pickRole chooses the role p acts in for an action roles may do: one
// that needs no MFA if p has one, else an MFA role when p's token shows
// MFA. Without a usable role it returns false, and the MFA role p lacks
// MFA for (or "").
func pickRole(p *sso.Identity, roles []api.Role) (api.Role, bool) {
	return chooseRole(p.Has, p.MFA, roles)
}

// chooseRole is pickRole for a person who has the roles has says, with
// MFA or not.
func chooseRole(has func(api.Role) bool, mfa bool, roles []api.Role) (api.Role, bool) {
	var needMFA api.Role
	for _, r := range roles {
		switch {
		case !has(r):
		case !sso.NeedsMFA(r):
			return r, true
		case needMFA == "":
			needMFA = r
		}
	}
	if needMFA != "" && mfa {
		return needMFA, true
	}
	return needMFA, false
}

// actAs makes a person act in a role of roles, the roles that may do
// what r asks once its body says what (push an approval, have a decision
// signed): the route's auth chose a role before (pickRole: one that needs
// no MFA first), which may not be one of them though another role of the
// person's is. A token keeps its one role (the handler refuses it as
// before). It answers the refusal itself: 403 saying MFA is needed, or
// that none of the person's roles may.
func (s *Server) actAs(w http.ResponseWriter, r *http.Request, roles []api.Role) (*http.Request, bool) {
	tok := tokenFrom(r)
	if tok.Person == nil || slices.Contains(roles, tok.Role) {
		return r, true
	}
	role, ok := chooseRole(func(r api.Role) bool { return slices.Contains(tok.Person.Roles, r) }, tok.Person.MFA, roles)
	switch {
	case !ok && role != "":
		fail(w, http.StatusForbidden, mfaRefusal(tok.Person, role))
		return nil, false
	case !ok:
		fail(w, http.StatusForbidden, fmt.Sprintf("%s (roles from %s: %s) may not do this", tok.Name, tok.Person.Issuer, roleList(tok.Person.Roles)))
		return nil, false
	}
	as := *tok
	as.Role = role
	return r.WithContext(withToken(r.Context(), &as)), true
}

func roleList(rs []api.Role) string {
	if len(rs) == 0 {
		return "none"
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return strings.Join(out, ",")
}

// safeReturn is the dashboard path to go to after sign-in: ret when it is
// a path under /ui/ of this server, else /ui/ (no open redirect).
func safeReturn(ret string) string {
	u, err := url.Parse(ret)
	if err != nil || ret == "" || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(ret, "/ui/") ||
		strings.ContainsAny(ret, "\\\r\n\t") || strings.HasPrefix(ret, "//") || strings.Contains(u.Path, "/../") ||
		strings.HasPrefix(ret, ssoStartPath) || strings.HasPrefix(ret, ssoCallbackPath) {
		return "/ui/"
	}
	return ret
}

// ssoRedirect is the dashboard's redirect URI at the provider.
func (s *Server) ssoRedirect() string { return s.cfg.PublicURL + ssoCallbackPath }

// serveSSOStart starts a dashboard sign-in: a fresh state, nonce and PKCE
// verifier, kept under a new binding cookie, and a redirect to the
// provider.
func (s *Server) serveSSOStart(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	l := sso.NewLogin()
	target, err := s.cfg.SSO.AuthURL(r.Context(), l, s.ssoRedirect())
	if err != nil {
		s.logger.Error("sign-in not started", "err", err)
		fail(w, http.StatusBadGateway, "couldn't reach the identity provider; try again later")
		return
	}
	bind := randomID()
	now := s.sessions.now()
	p := &Session{Login: &pendingLogin{Login: l, Return: safeReturn(r.URL.Query().Get("return"))},
		Created: now, LastSeen: now, Expires: now.Add(ssoLoginTTL)}
	if err := s.sessions.store.Put(r.Context(), sessionKey(bind), p); err != nil {
		s.logger.Error("sign-in not started", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't start sign-in")
		return
	}
	// Lax: the provider's redirect back is a cross-site top-level GET.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: bind, Path: ssoCallbackPath, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies || r.TLS != nil, MaxAge: int(ssoLoginTTL.Seconds())})
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// takeLogin returns (and ends: one use) the sign-in in progress bound to
// r's cookie whose state r carries; it answers the refusals itself.
func (s *Server) takeLogin(w http.ResponseWriter, r *http.Request) *pendingLogin {
	const again = "; start again at " + uiLoginPath
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		fail(w, http.StatusBadRequest, "no sign-in in progress in this browser"+again)
		return nil
	}
	key := sessionKey(c.Value)
	p, err := s.sessions.store.Get(r.Context(), key, s.sessions.now())
	if err == nil && p != nil {
		err = s.sessions.store.Delete(r.Context(), key)
	}
	switch {
	case err != nil:
		s.logger.Error("couldn't read sign-in", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't finish sign-in")
		return nil
	case p == nil || p.Login == nil:
		fail(w, http.StatusBadRequest, "sign-in expired or already finished"+again)
		return nil
	case !hmacEqual(r.URL.Query().Get("state"), p.Login.State):
		fail(w, http.StatusBadRequest, "sign-in state does not match this browser's"+again)
		return nil
	}
	return p.Login
}

// continuePage is parsed on first use.
var continuePage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("continue").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.}}">
<title>Signed in · custody</title><link rel="stylesheet" href="/ui/static/style.css"></head>
<body><main><p>Signed in. <a id="continue" href="{{.}}">Continue to the dashboard</a></p></main></body></html>`))
})

// serveSSOCallback finishes a dashboard sign-in: the code exchanged with
// the PKCE verifier, the ID token verified against the nonce, a new
// session for a person with a dashboard role. The answer is a page on
// this origin that goes on to the dashboard, so that the browser sends
// the SameSite=Strict session cookie (it does not on a redirect chain that
// began at the provider).
func (s *Server) serveSSOCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	l := s.takeLogin(w, r)
	if l == nil {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Path: ssoCallbackPath, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		fail(w, http.StatusUnauthorized, "the identity provider refused sign-in: "+oneLine(e, 200))
		return
	}
	id, err := s.cfg.SSO.Finish(r.Context(), l.Login, q.Get("code"), s.ssoRedirect())
	if err != nil {
		s.logger.Warn("sign-in refused", "err", err)
		fail(w, http.StatusUnauthorized, "sign-in refused: "+oneLine(err.Error(), 300))
		return
	}
	if len(uiRoles(id)) == 0 {
		fail(w, http.StatusForbidden, fmt.Sprintf("%s (roles from %s: %s) has no dashboard role: auditor or admin", id.Name(), id.Issuer, roleList(id.Roles)))
		return
	}
	sid, ok := s.startPersonSession(w, r, id, SessionIdle)
	if !ok {
		return
	}
	s.setCookie(w, r, sessionCookie, sid, "/ui/", int(SessionLifetime.Seconds()))
	s.setCookie(w, r, legacyCookie, "", "/ui/", -1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'")
	continuePage().Execute(w, l.Return)
}

// startPersonSession starts a session for id (idle timeout idle), no
// longer than its ID token is valid... for the dashboard; records
// "session.started" in the audit trail first, and returns the session ID.
func (s *Server) startPersonSession(w http.ResponseWriter, r *http.Request, id *sso.Identity, idle time.Duration) (string, bool) {
	sid := randomID()
	info := personInfo(id, sid, id.Roles)
	detail := map[string]any{"identity": id.Name(), "subject": id.Subject, "issuer": id.Issuer, "roles": id.Roles, "mfa": id.MFA, "amr": id.AMR}
	if _, err := s.audit(r.Context(), r.WithContext(withToken(r.Context(), info)), auditEvent{action: "session.started", actor: id.Name(), detail: detail}); err != nil {
		s.failAudit(w, err)
		return "", false
	}
	now := s.sessions.now()
	sess := &Session{Person: id, Idle: idle, Created: now, LastSeen: now, Expires: now.Add(SessionLifetime), CSRF: randomID()}
	if err := s.sessions.store.Put(r.Context(), sessionKey(sid), sess); err != nil {
		s.logger.Error("couldn't start session", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't start session")
		return "", false
	}
	s.logger.Info("signed in", "identity", id.Name(), "issuer", id.Issuer, "session", info.Person.Session, "mfa", id.MFA)
	return sid, true
}

// serveSSOInfo tells `custody login` where to sign in.
func (s *Server) serveSSOInfo(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.SSO.Config()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.SSOInfo{Issuer: cfg.Issuer, ClientID: cfg.CLIClientID})
}

// serveSessionCreate exchanges an ID token issued to the CLI's client
// (fresh, once) for a session secret.
func (s *Server) serveSessionCreate(w http.ResponseWriter, r *http.Request) {
	var req api.SessionRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxIDTokenBody))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.IDToken == "" {
		fail(w, http.StatusBadRequest, "body is not {\"id_token\": \"…\"} within 16 KiB")
		return
	}
	id, err := s.cfg.SSO.VerifyCLI(r.Context(), req.IDToken, s.cfg.PublicURL, req.Binding)
	if err != nil {
		fail(w, http.StatusUnauthorized, oneLine(err.Error(), 300))
		return
	}
	if len(id.Roles) == 0 {
		fail(w, http.StatusForbidden, fmt.Sprintf("%s (groups at %s) maps to no custody role", id.Name(), id.Issuer))
		return
	}
	// One exchange per ID token: a copy that leaked is worth nothing.
	now := s.sessions.now()
	used := &Session{Created: now, LastSeen: now, Expires: id.Expiry.Add(time.Minute)}
	switch err := s.sessions.store.Put(r.Context(), sessionKey("id-token\x00"+string(id.Token[:])), used); {
	case errors.Is(err, ErrSessionExists):
		fail(w, http.StatusUnauthorized, "this ID token was already exchanged for a session: run custody login again")
		return
	case err != nil:
		s.logger.Error("couldn't record ID token", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't start session")
		return
	}
	sid, ok := s.startPersonSession(w, r, id, 0)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(api.SessionAnswer{Session: SessionPrefix + sid, Identity: id.Name(), Issuer: id.Issuer,
		Roles: id.Roles, MFA: id.MFA, Expires: now.Add(SessionLifetime).UTC()})
}

// serveSessionEnd ends the session whose secret authenticates r, whatever
// its roles (a person without MFA may still sign out).
func (s *Server) serveSessionEnd(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sid, ok := strings.CutPrefix(strings.TrimSpace(tok), SessionPrefix)
	if !ok {
		fail(w, http.StatusBadRequest, "not a session: only sessions from custody login end here")
		return
	}
	sess, err := s.sessions.get(r.Context(), sid)
	switch {
	case err != nil:
		s.logger.Error("couldn't read session", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't check session")
		return
	case sess == nil || sess.Person == nil:
		fail(w, http.StatusUnauthorized, "session expired or already ended")
		return
	}
	r = r.WithContext(withToken(r.Context(), personInfo(sess.Person, sid, sess.Person.Roles)))
	if _, err := s.audit(r.Context(), r, auditEvent{action: "session.ended", actor: tokenFrom(r).Name, detail: map[string]string{"session": shortSession(sid)}}); err != nil {
		s.failAudit(w, err)
		return
	}
	if err := s.sessions.end(r.Context(), sid); err != nil {
		s.logger.Error("couldn't end session", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't end session")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ssoRoutes adds the sign-in routes when Config.SSO is set.
func (s *Server) ssoRoutes(handle func(string, http.HandlerFunc)) {
	if s.cfg.SSO == nil {
		return
	}
	handle("GET /api/v1/sso", s.serveSSOInfo)
	handle("POST /api/v1/sessions", s.serveSessionCreate)
	handle("POST /api/v1/sessions/end", s.serveSessionEnd)
	if s.ui != nil {
		handle("GET "+ssoStartPath, s.serveSSOStart)
		handle("GET "+ssoCallbackPath, s.serveSSOCallback)
	}
}

// oneLine shortens msg to at most n bytes on one line.
func oneLine(msg string, n int) string {
	msg = strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' '
		}
		return r
	}, msg)
	if len(msg) > n {
		msg = msg[:n] + "…"
	}
	return msg
}

// hmacEqual compares two secrets in constant time.
func hmacEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// withToken is ctx holding the request's authenticated holder.
func withToken(ctx context.Context, info *TokenInfo) context.Context {
	return context.WithValue(ctx, tokenKey{}, info)
}
