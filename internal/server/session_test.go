package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// startUI starts a server whose dashboard answers "page CSRF", CSRF being
// the session's token for its forms.
func startUI(t *testing.T) *testServer {
	t.Helper()
	return start(t, server.Config{UI: func(server.UIDeps) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "page "+server.SessionCSRF(r))
		}), nil
	}})
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request; form, when not nil, is posted; hdr are extra headers.
func (b *browser) do(method, path string, form url.Values, hdr ...string) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.base + "/ui/login")
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginForm fetches the sign-in form and returns its CSRF token.
func (b *browser) loginForm() string {
	b.t.Helper()
	code, _, body := b.do("GET", "/ui/login", nil)
	m := csrfInput.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		b.t.Fatalf("GET /ui/login: %d, no CSRF token in the form", code)
	}
	return m[1]
}

// signIn signs in with tok and fails the test unless a session starts.
func (b *browser) signIn(tok string) {
	b.t.Helper()
	csrf := b.loginForm()
	code, hdr, _ := b.do("POST", "/ui/login", url.Values{"token": {tok}, "csrf": {csrf}}, "Origin", b.base)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/ui/" || b.cookie("custody_session") == "" {
		b.t.Fatalf("sign in: %d → %q, session cookie %q", code, hdr.Get("Location"), b.cookie("custody_session"))
	}
}

// The sign-in form refuses cross-origin posts and posts without the CSRF
// token bound to the browser's login cookie, and starts no session then.
func TestLoginCSRF(t *testing.T) {
	ts := startUI(t)
	tok := ts.tokens[api.RoleAuditor]
	b := newBrowser(t, ts.url)
	if code, hdr, _ := b.do("GET", "/ui/", nil); code != http.StatusSeeOther || hdr.Get("Location") != "/ui/login" {
		t.Fatalf("GET /ui/ signed out: %d → %q; want the login form", code, hdr.Get("Location"))
	}
	csrf := b.loginForm()
	for _, tt := range []struct {
		what string
		form url.Values
		hdr  []string
	}{
		{"cross-origin (Origin)", url.Values{"token": {tok}, "csrf": {csrf}}, []string{"Origin", "https://evil.example"}},
		{"cross-site (Sec-Fetch-Site)", url.Values{"token": {tok}, "csrf": {csrf}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"no CSRF token", url.Values{"token": {tok}}, []string{"Origin", ts.url}},
		{"wrong CSRF token", url.Values{"token": {tok}, "csrf": {csrf + "x"}}, []string{"Origin", ts.url}},
	} {
		code, hdr, _ := b.do("POST", "/ui/login", tt.form, tt.hdr...)
		if code != http.StatusForbidden || strings.Contains(hdr.Get("Set-Cookie"), "custody_session") {
			t.Errorf("%s: %d, Set-Cookie %q; want 403 and no session", tt.what, code, hdr.Get("Set-Cookie"))
		}
	}
	// The form's token from another browser (no login cookie, or another).
	other := newBrowser(t, ts.url)
	other.loginForm()
	if code, _, _ := other.do("POST", "/ui/login", url.Values{"token": {tok}, "csrf": {csrf}}, "Origin", ts.url); code != http.StatusForbidden {
		t.Errorf("CSRF token of another browser: %d, want 403", code)
	}
	if code, _, _ := newBrowser(t, ts.url).do("POST", "/ui/login", url.Values{"token": {tok}, "csrf": {csrf}}); code != http.StatusForbidden {
		t.Errorf("no login cookie: %d, want 403", code)
	}
	if b.cookie("custody_session") != "" {
		t.Fatal("a refused sign-in set a session cookie")
	}
	// Lower roles do not sign in.
	for _, r := range []api.Role{api.RoleBuilder, api.RoleApprover, api.RoleDeployer} {
		csrf := b.loginForm()
		if code, _, _ := b.do("POST", "/ui/login", url.Values{"token": {ts.tokens[r]}, "csrf": {csrf}}, "Origin", ts.url); code != http.StatusUnauthorized || b.cookie("custody_session") != "" {
			t.Errorf("%s token: %d, want 401 and no session", r, code)
		}
	}
	b.signIn(tok)
}

// A session cookie holds a random ID, not the token; logout needs the
// session's CSRF token from this origin and ends the session for good.
func TestSessionLogout(t *testing.T) {
	ts := startUI(t)
	tok := ts.tokens[api.RoleAdmin]
	b := newBrowser(t, ts.url)
	b.signIn(tok)
	sid := b.cookie("custody_session")
	if sid == tok || strings.Contains(sid, tok) || strings.HasPrefix(sid, api.TokenPrefix) {
		t.Fatal("the session cookie holds the token")
	}
	code, _, page := b.do("GET", "/ui/", nil)
	csrf := strings.TrimPrefix(page, "page ")
	if code != http.StatusOK || csrf == "" {
		t.Fatalf("GET /ui/ signed in: %d %q", code, page)
	}
	// The token in the old cookie (before sessions) does not sign in.
	old := newBrowser(t, ts.url)
	u, _ := url.Parse(ts.url + "/ui/")
	old.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "custody_ui", Value: tok, Path: "/ui/"}})
	if code, _, _ := old.do("GET", "/ui/", nil); code != http.StatusSeeOther {
		t.Errorf("raw token in the custody_ui cookie: %d, want a redirect to the login form", code)
	}

	for _, tt := range []struct {
		what string
		form url.Values
		hdr  []string
	}{
		{"cross-origin", url.Values{"csrf": {csrf}}, []string{"Origin", "https://evil.example"}},
		{"no CSRF token", url.Values{}, []string{"Origin", ts.url}},
		{"wrong CSRF token", url.Values{"csrf": {"x" + csrf}}, []string{"Origin", ts.url}},
	} {
		if code, _, _ := b.do("POST", "/ui/logout", tt.form, tt.hdr...); code != http.StatusForbidden {
			t.Errorf("logout %s: %d, want 403", tt.what, code)
		}
	}
	if code, _, _ := b.do("GET", "/ui/", nil); code != http.StatusOK {
		t.Fatalf("a refused logout ended the session (%d)", code)
	}
	code, hdr, _ := b.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}, "Origin", ts.url)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/ui/login" || b.cookie("custody_session") != "" {
		t.Fatalf("logout: %d → %q, cookie %q", code, hdr.Get("Location"), b.cookie("custody_session"))
	}
	// The old session ID no longer works, also when replayed.
	replay := newBrowser(t, ts.url)
	replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "custody_session", Value: sid, Path: "/ui/"}})
	if code, _, _ := replay.do("GET", "/ui/", nil); code != http.StatusSeeOther {
		t.Errorf("session ID after logout: %d, want a redirect to the login form", code)
	}
}

// Revoking the token a session started with ends the session within
// seconds; so does its expiry.
func TestSessionDiesWithToken(t *testing.T) {
	ts := startUI(t)
	tok, err := tokenfile.CreateToken(ts.dir, api.RoleAuditor, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, ts.url)
	b.signIn(tok)
	if code, _, _ := b.do("GET", "/ui/", nil); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
	if _, err := tokenfile.RevokeToken(ts.dir, "alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session of a revoked token to end", func() bool {
		code, _, _ := b.do("GET", "/ui/", nil)
		return code == http.StatusSeeOther
	})
	// Ended, not suspended: a new token of the same name does not revive it.
	if _, err := tokenfile.CreateToken(ts.dir, api.RoleAuditor, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := b.do("GET", "/ui/", nil); code != http.StatusSeeOther {
		t.Errorf("session after its token was revoked: %d", code)
	}
}

// waitFor polls cond until it holds (no timing assertion: a ceiling only).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A token's revocation and expiry take effect on the running server;
// unknown, revoked and expired tokens get 401 with the reason; a
// malformed line in the tokens file is skipped, not a 500 for everyone.
func TestTokenLifecycle(t *testing.T) {
	ts := start(t, server.Config{})
	tok, err := tokenfile.CreateToken(ts.dir, api.RoleBuilder, "", "ci")
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", ts.url+"/api/v1/incidents", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, _ := get(tok); code != http.StatusOK {
		t.Fatalf("new token: %d", code)
	}
	// Malformed lines, appended by hand.
	appendLine(t, ts.dir+"/tokens", "{not json\n{\"sha256\":\"00\",\"role\":\"admin\"}\n{\"sha256\":\""+strings.Repeat("a", 64)+"\",\"role\":\"root\"}\n")
	waitFor(t, "the tokens file to be read again", func() bool {
		l, _ := tokenfile.ListTokens(ts.dir)
		return len(l.Skipped) == 3
	})
	if code, msg := get(tok); code != http.StatusOK {
		t.Fatalf("with malformed lines in the tokens file: %d %s", code, msg)
	}
	if code, msg := get(api.TokenPrefix + "wrong"); code != http.StatusUnauthorized || msg != "invalid token" {
		t.Errorf("unknown token: %d %q", code, msg)
	}
	if _, err := tokenfile.RevokeToken(ts.dir, "ci"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoked token to be refused", func() bool {
		code, msg := get(tok)
		return code == http.StatusUnauthorized && msg == "token revoked"
	})
	short, _, err := tokenfile.NewToken(ts.dir, tokenfile.TokenSpec{Role: api.RoleAuditor, Name: "short", Expires: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expired token to be refused", func() bool {
		code, msg := get(short)
		return code == http.StatusUnauthorized && msg == "token expired"
	})
}

// Lower roles are refused by the token API; an admin lists and revokes.
func TestTokenAPIRoles(t *testing.T) {
	ts := start(t, server.Config{})
	for _, r := range []api.Role{api.RoleBuilder, api.RoleApprover, api.RoleDeployer, api.RoleAuditor} {
		c := newClient(t, ts, r)
		_, err := c.Tokens(context.Background())
		wantStatus(t, string(r)+" lists tokens", err, http.StatusForbidden)
		_, err = c.RevokeToken(context.Background(), "test admin")
		wantStatus(t, string(r)+" revokes a token", err, http.StatusForbidden)
	}
	adm := newClient(t, ts, api.RoleAdmin)
	l, err := adm.Tokens(context.Background())
	if err != nil || len(l.Tokens) != len(api.Roles()) {
		t.Fatalf("Tokens = %+v, %v", l, err)
	}
	raw, _ := json.Marshal(l)
	for _, tok := range ts.tokens {
		if strings.Contains(string(raw), tok) {
			t.Fatal("the token list holds a secret")
		}
	}
	st, err := adm.RevokeToken(context.Background(), "test builder")
	if err != nil || st.Role != api.RoleBuilder || st.Revoked.IsZero() {
		t.Fatalf("RevokeToken = %+v, %v", st, err)
	}
	_, err = adm.RevokeToken(context.Background(), "test builder")
	wantStatus(t, "revoking it again", err, http.StatusNotFound)
}

// An incident report whose compromise time is in the future, or after the
// incident was opened, is refused with 400 and stores nothing (the mean
// time to detect went negative).
func TestIncidentFutureCompromise(t *testing.T) {
	ts := start(t, server.Config{})
	adm := newClient(t, ts, api.RoleAdmin)
	ctx := context.Background()
	now := time.Now().UTC()
	report := func(since, opened time.Time) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"compromisedSince": since, "openedAt": opened})
		return b
	}
	inc := storetest.IncidentID(7)
	for _, tt := range []struct {
		what string
		rec  *store.IncidentRecord
		want string
	}{
		{"compromise in the future", &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Time: now,
			Report: report(now.Add(48*time.Hour), now)}, "compromise time"},
		{"compromise after opening", &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Time: now,
			Report: report(now.Add(-time.Hour), now.Add(-2*time.Hour))}, "after the incident was opened"},
		{"opened in the future", &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Time: now,
			Report: report(now.Add(-time.Hour), now.Add(24*time.Hour))}, "opening time"},
		{"record in the future", &store.IncidentRecord{Incident: inc, Event: store.IncidentOpened, Time: now.Add(24 * time.Hour)}, "in the future"},
	} {
		_, err := adm.AppendIncident(ctx, tt.rec)
		wantStatus(t, tt.what, err, http.StatusBadRequest)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want it to say %q", tt.what, err, tt.want)
		}
	}
	if got, err := adm.Incidents(ctx, store.IncidentQuery{}); err != nil || len(got) != 0 {
		t.Errorf("incidents after refused records = %d, %v; want none", len(got), err)
	}
	if _, err := adm.AppendIncident(ctx, &store.IncidentRecord{Incident: inc, Event: store.IncidentReported, Time: now,
		Report: report(now.Add(-time.Hour), now)}); err != nil {
		t.Errorf("a report in the past: %v", err)
	}
}

func appendLine(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
