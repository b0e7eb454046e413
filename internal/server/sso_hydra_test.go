package server_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/ssotest"
)

var (
	alice   = ssotest.User{Subject: "alice", Email: "alice@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd", "otp"}}
	bob     = ssotest.User{Subject: "bob", Email: "bob@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd"}}
	mallory = ssotest.User{Subject: "mallory", Email: "mallory@example.com", Groups: []string{"custody-auditors"}, AMR: []string{"pwd", "otp"}}
)

// hydraServer starts hydra and a custody server signing people in through
// it; its dashboard answers "holder WHO".
func hydraServer(t *testing.T) (*ssotest.Hydra, *testServer) {
	t.Helper()
	h := ssotest.StartHydra(t)
	ts := start(t, server.Config{SSO: ssoProvider(t, h.Issuer, "dashboard-secret"),
		UI: func(server.UIDeps) (http.Handler, error) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "holder "+server.SessionHolder(r)+" csrf "+server.SessionCSRF(r))
			}), nil
		}})
	h.Client(t, dashboardClient, "dashboard-secret", ts.url+"/ui/sso/callback")
	h.Client(t, cliClient, "", "http://127.0.0.1/callback")
	return h, ts
}

// stopAt is a browser that follows redirects until one leads to a URL
// whose path is path, and stops there.
func stopAt(c *http.Client, path string) *http.Client {
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == path {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c
}

// get fetches u with c and returns the status, the final URL and the body.
func get(t *testing.T, c *http.Client, u string) (int, *url.URL, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL, string(b)
}

// callbackURL runs a browser's sign-in up to the redirect to custody's
// callback and returns that URL (not visited).
func callbackURL(t *testing.T, c *http.Client, ts *testServer) string {
	t.Helper()
	stopAt(c, "/ui/sso/callback")
	resp, err := c.Get(ts.url + "/ui/sso/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.Contains(loc, "/ui/sso/callback?") {
		t.Fatalf("sign-in ended at %d %s, not at the callback", resp.StatusCode, resp.Request.URL)
	}
	c.CheckRedirect = nil
	return loc
}

var continueTo = regexp.MustCompile(`url=([^"]+)"`)

// A person signs in to the dashboard through hydra (code + PKCE + state +
// nonce) and reaches it with the role their groups map to, named with
// identity, MFA and issuer; signing out ends the session.
func TestSSODashboardHydra(t *testing.T) {
	h, ts := hydraServer(t)
	h.SetUser(alice)
	b := ssotest.Browser()
	code, at, body := get(t, b, ts.url+"/ui/sso/start?return=/ui/incidents")
	if code != http.StatusOK || at.Path != "/ui/sso/callback" || continueTo.FindStringSubmatch(body) == nil ||
		continueTo.FindStringSubmatch(body)[1] != "/ui/incidents" {
		t.Fatalf("sign-in = %d at %s: %s", code, at, body)
	}
	_, _, page := get(t, b, ts.url+"/ui/incidents")
	if want := "holder alice@example.com · admin · MFA · via " + h.Issuer; !strings.HasPrefix(page, want) {
		t.Fatalf("dashboard says %q; want %q", page, want)
	}
	started := lastAudit(t, ts, "session.started")
	if started.Identity != "alice@example.com" || started.Issuer != h.Issuer || started.Session == "" {
		t.Errorf("session.started names %q %q %q", started.Identity, started.Issuer, started.Session)
	}

	// Sign out: the session cookie no longer opens the dashboard.
	csrf := page[strings.LastIndex(page, " ")+1:]
	u, _ := url.Parse(ts.url)
	old := b.Jar.Cookies(u)
	resp, err := b.PostForm(ts.url+"/ui/logout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ended := lastAudit(t, ts, "session.ended"); ended.Identity != "alice@example.com" || ended.Issuer != h.Issuer || ended.Session != started.Session {
		t.Errorf("dashboard sign-out: session.ended names %q %q %q; want alice's session %q", ended.Identity, ended.Issuer, ended.Session, started.Session)
	}
	replay := ssotest.Browser()
	replay.Jar.SetCookies(u, old)
	if resp, _ := stopAt(replay, "/ui/login").Get(ts.url + "/ui/"); resp == nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("signed-out session cookie still opens the dashboard")
	}

	// Without MFA, the dashboard says admin actions are refused.
	h.SetUser(bob)
	nb := ssotest.Browser()
	get(t, nb, ts.url+"/ui/sso/start")
	if _, _, page := get(t, nb, ts.url+"/ui/"); !strings.Contains(page, "bob@example.com · admin · no MFA: admin actions refused") {
		t.Errorf("dashboard without MFA says %q", page)
	}
	// A person whose groups give no dashboard role is refused.
	h.SetUser(ssotest.User{Subject: "dave", Email: "dave@example.com", Groups: []string{"custody-deployers"}, AMR: []string{"pwd"}})
	if code, _, body := get(t, ssotest.Browser(), ts.url+"/ui/sso/start"); code != http.StatusForbidden || !strings.Contains(body, "no dashboard role") {
		t.Errorf("deployer at the dashboard = %d %q; want 403", code, body)
	}
}

// The attacks on the sign-in's callback, with a real provider: each is
// refused with a one-line reason and starts no session.
func TestSSOCallbackAttacksHydra(t *testing.T) {
	h, ts := hydraServer(t)
	h.SetUser(alice)
	refused := func(what string, code int, body string, wantCode int, want string) {
		t.Helper()
		if code != wantCode || !strings.Contains(body, want) {
			t.Errorf("%s = %d %q; want %d naming %q", what, code, body, wantCode, want)
		}
	}

	// CSRF / login fixation: a callback URL delivered to another browser
	// (without the binding cookie) is refused; the right browser then
	// finishes with it.
	victim := ssotest.Browser()
	cb := callbackURL(t, victim, ts)
	code, _, body := get(t, ssotest.Browser(), cb)
	refused("callback in another browser", code, body, 400, "no sign-in in progress in this browser")
	if code, _, body := get(t, victim, cb); code != http.StatusOK {
		t.Fatalf("the browser that started it = %d %s", code, body)
	}
	// Replay of the state (and code): one use.
	code, _, body = get(t, victim, cb)
	refused("callback replayed", code, body, 400, "no sign-in in progress")

	// Code injection: the attacker's code under the victim's state fails
	// the victim's PKCE verifier.
	h.SetUser(mallory)
	attackerCB, _ := url.Parse(callbackURL(t, ssotest.Browser(), ts))
	h.SetUser(alice)
	victim = ssotest.Browser()
	victimCB, _ := url.Parse(callbackURL(t, victim, ts))
	q := victimCB.Query()
	q.Set("code", attackerCB.Query().Get("code"))
	victimCB.RawQuery = q.Encode()
	code, _, body = get(t, victim, victimCB.String())
	refused("injected code", code, body, 401, "sign-in refused")

	// State from another sign-in: refused.
	victim = ssotest.Browser()
	victimCB, _ = url.Parse(callbackURL(t, victim, ts))
	q = victimCB.Query()
	q.Set("state", attackerCB.Query().Get("state"))
	victimCB.RawQuery = q.Encode()
	code, _, body = get(t, victim, victimCB.String())
	refused("other sign-in's state", code, body, 400, "state does not match")

	// PKCE downgrade: the authorization request without its challenge;
	// the provider then refuses the verifier custody always sends.
	b := ssotest.Browser()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.Get(ts.url + "/ui/sso/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auth, _ := url.Parse(resp.Header.Get("Location"))
	if auth.Query().Get("code_challenge_method") != "S256" || auth.Query().Get("nonce") == "" || auth.Query().Get("state") == "" {
		t.Fatalf("authorization request %s lacks S256 PKCE, nonce or state", auth)
	}
	q = auth.Query()
	q.Del("code_challenge")
	q.Del("code_challenge_method")
	auth.RawQuery = q.Encode()
	b.CheckRedirect = nil
	code, _, body = get(t, b, auth.String())
	refused("PKCE stripped", code, body, 401, "sign-in refused")

	// Open redirect: the return URL stays on the dashboard.
	for _, ret := range []string{"https://evil.example/", "//evil.example/ui/", "/ui/\\evil.example", "/\\evil.example", "/ui/../../x"} {
		_, _, body := get(t, ssotest.Browser(), ts.url+"/ui/sso/start?return="+url.QueryEscape(ret))
		if m := continueTo.FindStringSubmatch(body); m == nil || m[1] != "/ui/" {
			t.Errorf("return %q continues to %v; want /ui/", ret, m)
		}
	}

	// Session fixation: a session cookie planted before sign-in is
	// replaced, and the planted value opens nothing.
	b = ssotest.Browser()
	u, _ := url.Parse(ts.url)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: "custody_session", Value: "planted-by-attacker", Path: "/ui/"}})
	get(t, b, ts.url+"/ui/sso/start")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "custody_session" && c.Value == "planted-by-attacker" {
			t.Error("sign-in kept the planted session ID")
		}
	}
	planted := stopAt(ssotest.Browser(), "/ui/login")
	planted.Jar.SetCookies(u, []*http.Cookie{{Name: "custody_session", Value: "planted-by-attacker", Path: "/ui/"}})
	if resp, _ := planted.Get(ts.url + "/ui/"); resp == nil || resp.StatusCode != http.StatusSeeOther {
		t.Error("planted session ID opens the dashboard")
	}
}
