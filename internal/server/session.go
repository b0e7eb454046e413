package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"
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

type session struct {
	token    [sha256.Size]byte // SHA-256 of the token that signed in
	csrf     string            // the logout form's CSRF token
	created  time.Time
	lastSeen time.Time
}

// sessions holds the dashboard sessions by the SHA-256 of their IDs.
type sessions struct {
	now func() time.Time
	key [32]byte // MACs the sign-in form's CSRF tokens

	mu sync.Mutex
	m  map[[sha256.Size]byte]*session
}

func newSessions() *sessions {
	ss := &sessions{now: time.Now, m: map[[sha256.Size]byte]*session{}}
	rand.Read(ss.key[:])
	return ss
}

func randomID() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for the token whose SHA-256 is token and returns
// its ID.
func (ss *sessions) create(token [sha256.Size]byte) string {
	id := randomID()
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.sweep(now)
	}
	if len(ss.m) >= maxSessions {
		var oldest [sha256.Size]byte
		var seen time.Time
		for k, s := range ss.m {
			if seen.IsZero() || s.lastSeen.Before(seen) {
				oldest, seen = k, s.lastSeen
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[sha256.Sum256([]byte(id))] = &session{token: token, csrf: randomID(), created: now, lastSeen: now}
	return id
}

// sweep ends expired sessions; ss.mu is held.
func (ss *sessions) sweep(now time.Time) {
	for k, s := range ss.m {
		if s.expired(now) {
			delete(ss.m, k)
		}
	}
}

func (s *session) expired(now time.Time) bool {
	return !now.Before(s.created.Add(SessionLifetime)) || !now.Before(s.lastSeen.Add(SessionIdle))
}

// get returns the session of id, marked seen now; nil when there is none or
// it expired (and is ended).
func (ss *sessions) get(id string) *session {
	k := sha256.Sum256([]byte(id))
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[k]
	if s == nil {
		return nil
	}
	if s.expired(now) {
		delete(ss.m, k)
		return nil
	}
	s.lastSeen = now
	c := *s
	return &c
}

// end ends the session of id.
func (ss *sessions) end(id string) {
	k := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	delete(ss.m, k)
	ss.mu.Unlock()
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

// sessionAuth authenticates a dashboard request by its session cookie: the
// session and the token that started it must both be valid. It returns r
// with the token holder and the session's CSRF token, or false when there
// is no valid session (a session whose token was refused is ended).
func (s *Server) sessionAuth(r *http.Request) (*http.Request, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false, nil
	}
	sess := s.sessions.get(c.Value)
	if sess == nil {
		return nil, false, nil
	}
	info, err := s.tokens.lookupHash(&sess.token)
	switch {
	case tokenRefused(err) || (err == nil && !uiRole(info.Role)):
		s.sessions.end(c.Value)
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	ctx := context.WithValue(context.WithValue(r.Context(), tokenKey{}, info), csrfKey{}, sess.csrf)
	return r.WithContext(ctx), true, nil
}

// serveLogout ends the session (POST, with its CSRF token) and clears its
// cookie.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	var sess *session
	if err == nil {
		sess = s.sessions.get(c.Value)
	}
	if sess != nil {
		ok := s.checkForm(w, r, func(tok string) bool {
			return subtle.ConstantTimeCompare([]byte(tok), []byte(sess.csrf)) == 1
		})
		if !ok {
			return
		}
		s.sessions.end(c.Value)
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
