package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/sso"
)

// Dashboard sessions. Signing in with an auditor or admin token at
// /ui/login starts a session: a random 256-bit session ID in the
// custody_session cookie (HttpOnly, SameSite=Strict, Secure behind https
// or over TLS), of which the server keeps only the SHA-256, in memory (a
// restart signs everyone out). A session ends at logout, SessionIdle after its last
// request, SessionLifetime after sign-in, and as soon as the token that
// started it is revoked, expires or loses its dashboard role: every request
// checks that token again. The token itself is never in a cookie.
const (
	SessionLifetime = 8 * time.Hour
	SessionIdle     = 30 * time.Minute
	// maxSessions bounds the sessions kept; the least recently used one
	// is ended to make room.
	maxSessions = 4096

	sessionCookie = "custody_session"
	loginCookie   = "custody_login" // binds the sign-in form's CSRF token to the browser
	legacyCookie  = "custody_ui"    // held the raw token before sessions; cleared at sign-in
	csrfField     = "csrf"
	uiLogoutPath  = "/ui/logout"
	maxFormBytes  = 4096
)

// Session is one signed-in session: a browser's (cookie) or, for a
// person signed in through the OIDC provider, the CLI's too (bearer
// secret). Stores keep it by the SHA-256 of its ID, never the ID.
type Session struct {
	// Token is the SHA-256 of the bearer token a dashboard session was
	// started with; zero when Person started it.
	Token [sha256.Size]byte `json:"token,omitzero"`
	// Person is who signed in through the OIDC provider (sso).
	Person *sso.Identity `json:"person,omitempty"`
	// Login is a sign-in in progress (the callback's state, nonce and
	// PKCE verifier), kept under the browser's binding cookie.
	Login *pendingLogin `json:"login,omitempty"`
	CSRF  string        `json:"csrf,omitempty"` // the logout form's CSRF token
	// Created and LastSeen; the session ends at Expires, and Idle after
	// LastSeen (0: never idle).
	Created, LastSeen, Expires time.Time
	Idle                       time.Duration
}

// pendingLogin is a dashboard sign-in between the redirect to the
// provider and its callback.
type pendingLogin struct {
	sso.Login
	Return string `json:"return"` // dashboard path to go to afterwards
}

// Expired reports whether s has ended at now.
func (s *Session) Expired(now time.Time) bool {
	return !now.Before(s.Expires) || (s.Idle > 0 && !now.Before(s.LastSeen.Add(s.Idle)))
}

// ErrSessionExists is Put's answer for a key already stored.
var ErrSessionExists = errors.New("session exists")

// SessionStore keeps sessions by the SHA-256 of their IDs (or of what
// else names them: a sign-in's binding cookie, an exchanged ID token).
// Config.Sessions; the default keeps them in memory, so that a restart
// signs everyone out.
type SessionStore interface {
	// Put stores s under key unless key is taken (ErrSessionExists).
	Put(ctx context.Context, key [sha256.Size]byte, s *Session) error
	// Get returns a copy of the session under key, marked seen at now;
	// nil when there is none or it expired (and is then deleted).
	Get(ctx context.Context, key [sha256.Size]byte, now time.Time) (*Session, error)
	// Delete ends the session under key (none: no error).
	Delete(ctx context.Context, key [sha256.Size]byte) error
}

// memSessions is the in-memory SessionStore, holding at most maxSessions
// sessions (the least recently used one is ended to make room) and, apart,
// at most maxPendingLogins sign-ins in progress (the oldest is dropped).
// Anyone may start a sign-in: kept apart, a flood of them cannot end a
// session or forget an exchanged ID token.
type memSessions struct {
	mu     sync.Mutex
	m      map[[sha256.Size]byte]*Session
	logins map[[sha256.Size]byte]*Session
}

// maxPendingLogins bounds the dashboard sign-ins in progress kept.
const maxPendingLogins = 1024

// NewMemorySessions returns an in-memory SessionStore.
func NewMemorySessions() SessionStore {
	return &memSessions{m: map[[sha256.Size]byte]*Session{}, logins: map[[sha256.Size]byte]*Session{}}
}

func (ms *memSessions) Put(_ context.Context, key [sha256.Size]byte, s *Session) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, t := range []map[[sha256.Size]byte]*Session{ms.m, ms.logins} {
		if old := t[key]; old != nil && !old.Expired(s.Created) {
			return ErrSessionExists
		}
	}
	table, limit := ms.m, maxSessions
	if s.Login != nil {
		table, limit = ms.logins, maxPendingLogins
	}
	if len(table) >= limit {
		sweepExpired(table, s.Created)
	}
	if len(table) >= limit {
		var oldest [sha256.Size]byte
		var seen time.Time
		for k, s := range table {
			if seen.IsZero() || s.LastSeen.Before(seen) {
				oldest, seen = k, s.LastSeen
			}
		}
		delete(table, oldest)
	}
	c := *s
	table[key] = &c
	return nil
}

// sweepExpired ends the expired sessions of table; ms.mu is held.
func sweepExpired(table map[[sha256.Size]byte]*Session, now time.Time) {
	for k, s := range table {
		if s.Expired(now) {
			delete(table, k)
		}
	}
}

func (ms *memSessions) Get(_ context.Context, key [sha256.Size]byte, now time.Time) (*Session, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	table := ms.m
	s := table[key]
	if s == nil {
		table = ms.logins
		s = table[key]
	}
	if s == nil {
		return nil, nil
	}
	if s.Expired(now) {
		delete(table, key)
		return nil, nil
	}
	s.LastSeen = now
	c := *s
	return &c, nil
}

func (ms *memSessions) Delete(_ context.Context, key [sha256.Size]byte) error {
	ms.mu.Lock()
	delete(ms.m, key)
	delete(ms.logins, key)
	ms.mu.Unlock()
	return nil
}

// sessions is the server's view of its session store.
type sessions struct {
	now   func() time.Time
	key   [32]byte // MACs the sign-in form's CSRF tokens
	store SessionStore
}

func newSessions(store SessionStore) *sessions {
	if store == nil {
		store = NewMemorySessions()
	}
	ss := &sessions{now: time.Now, store: store}
	rand.Read(ss.key[:])
	return ss
}

func randomID() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionKey is the key a session of ID id is stored under.
func sessionKey(id string) [sha256.Size]byte { return sha256.Sum256([]byte(id)) }

// shortSession is the form of a session ID that audit entries and logs
// name: the first 12 hex digits of the SHA-256 of the ID (never the ID).
func shortSession(id string) string {
	k := sessionKey(id)
	return hex.EncodeToString(k[:6])
}

// create starts a browser session for the token whose SHA-256 is token
// and returns its ID.
func (ss *sessions) create(ctx context.Context, token [sha256.Size]byte) (string, error) {
	return ss.start(ctx, &Session{Token: token, Idle: SessionIdle})
}

// start stores s (its times and CSRF token set now) under a new random
// ID and returns the ID.
func (ss *sessions) start(ctx context.Context, s *Session) (string, error) {
	id := randomID()
	now := ss.now()
	s.Created, s.LastSeen, s.CSRF = now, now, randomID()
	if s.Expires.IsZero() || s.Expires.After(now.Add(SessionLifetime)) {
		s.Expires = now.Add(SessionLifetime)
	}
	if err := ss.store.Put(ctx, sessionKey(id), s); err != nil {
		return "", fmt.Errorf("couldn't store session: %w", err)
	}
	return id, nil
}

// get returns the session of id, marked seen now; nil when there is none
// or it expired (and is ended).
func (ss *sessions) get(ctx context.Context, id string) (*Session, error) {
	return ss.store.Get(ctx, sessionKey(id), ss.now())
}

// end ends the session of id.
func (ss *sessions) end(ctx context.Context, id string) error {
	return ss.store.Delete(ctx, sessionKey(id))
}

// loginCSRF is the sign-in form's CSRF token for the login cookie value v.
func (ss *sessions) loginCSRF(v string) string {
	m := hmac.New(sha256.New, ss.key[:])
	m.Write([]byte("custody sign-in form\x00"))
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type csrfKey struct{}

// SessionCSRF returns the CSRF token of the dashboard session r belongs
// to, for the forms of its pages (logout); "" when r was authenticated
// otherwise (a bearer token).
func SessionCSRF(r *http.Request) string {
	s, _ := r.Context().Value(csrfKey{}).(string)
	return s
}

// SessionHolder says who authenticated r, for the dashboard's header: a
// person signed in through the OIDC provider with identity, role, whether
// their token showed MFA and the issuer, or the token's role and name.
func SessionHolder(r *http.Request) string {
	info := tokenFrom(r)
	switch {
	case info == nil:
		return ""
	case info.Person != nil:
		mfa := "no MFA: admin actions refused"
		if info.Person.MFA {
			mfa = "MFA"
		}
		return fmt.Sprintf("%s · %s · %s · via %s", info.Person.Identity, info.Role, mfa, info.Person.Issuer)
	}
	return fmt.Sprintf("token %s", tokenName(info))
}

// crossOrigin builds the dashboard's check of the origin of state-changing
// requests (Sec-Fetch-Site, else Origin against Host): a cross-origin
// request is refused whatever it carries. The public URL's origin is
// trusted too (behind a proxy Host may differ).
func crossOrigin(publicURL string) *http.CrossOriginProtection {
	p := http.NewCrossOriginProtection()
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		p.AddTrustedOrigin(u.Scheme + "://" + u.Host) // an error leaves it untrusted
	}
	return p
}

// checkForm admits a state-changing dashboard form: from this origin
// (403 otherwise), within maxFormBytes, carrying the CSRF token valid
// accepts (403 otherwise). It answers the refusals itself.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, valid func(tok string) bool) bool {
	if err := s.origin.Check(r); err != nil {
		fail(w, http.StatusForbidden, "cross-origin request refused")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "malformed form")
		return false
	}
	tok := r.PostForm.Get(csrfField)
	if tok == "" || !valid(tok) {
		fail(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
		return false
	}
	return true
}

// sessionAuth authenticates a dashboard request by its session cookie: a
// session a token started (the token must still be valid) or a person
// signed in through the OIDC provider with a dashboard role. It returns r
// with the holder and the session's CSRF token, or false when there is no
// valid session (a session whose token was refused is ended).
func (s *Server) sessionAuth(r *http.Request) (*http.Request, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false, nil
	}
	sess, err := s.sessions.get(r.Context(), c.Value)
	if sess == nil || err != nil {
		return nil, false, err
	}
	var info *TokenInfo
	if sess.Person != nil {
		if info = personInfo(sess.Person, c.Value, uiRoles(sess.Person)); info == nil {
			return nil, false, s.sessions.end(r.Context(), c.Value)
		}
	} else {
		info, err = s.tokens.lookupHash(&sess.Token)
		switch {
		case tokenRefused(err) || (err == nil && !uiRole(info.Role)):
			return nil, false, s.sessions.end(r.Context(), c.Value)
		case err != nil:
			return nil, false, err
		}
	}
	ctx := context.WithValue(context.WithValue(r.Context(), tokenKey{}, info), csrfKey{}, sess.CSRF)
	return r.WithContext(ctx), true, nil
}

// serveLogout ends the session (POST, with its CSRF token) and clears its
// cookie.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	var sess *Session
	if err == nil {
		sess, _ = s.sessions.get(r.Context(), c.Value)
	}
	if sess != nil {
		ok := s.checkForm(w, r, func(tok string) bool {
			return subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) == 1
		})
		if !ok {
			return
		}
		if sess.Person != nil {
			r := r.WithContext(withToken(r.Context(), personInfo(sess.Person, c.Value, sess.Person.Roles)))
			if _, err := s.audit(r.Context(), r, auditEvent{action: "session.ended", actor: sess.Person.Name(),
				detail: map[string]string{"session": shortSession(c.Value)}}); err != nil {
				s.failAudit(w, err)
				return
			}
		}
		if err := s.sessions.end(r.Context(), c.Value); err != nil {
			s.logger.Error("couldn't end session", "err", err)
			fail(w, http.StatusInternalServerError, "couldn't end session")
			return
		}
	}
	s.setCookie(w, r, sessionCookie, "", "/ui/", -1)
	http.Redirect(w, r, uiLoginPath, http.StatusSeeOther)
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) a dashboard cookie,
// Secure behind an https public URL or when r came over TLS.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureCookies || r.TLS != nil, MaxAge: maxAge})
}
