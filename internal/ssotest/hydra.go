// Package ssotest runs a real OpenID Connect provider for tests: ory/hydra
// v2.3.0 (built by scripts/tool hydra; scripts/test exports its path as
// CUSTODY_TEST_HYDRA), with an in-memory database on loopback ports of its
// own, plus the login and consent app hydra delegates to, which accepts
// every sign-in as the user the test chose (with or without MFA, with its
// groups in the ID token) through hydra's admin API. It also has a small
// issuer of hand-made ID tokens (Issuer) for the refusals hydra will not
// produce: another audience, expired, another key.
package ssotest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/childenv"

	"golang.org/x/oauth2"
)

// HydraEnv names the hydra binary the tests run.
const HydraEnv = "CUSTODY_TEST_HYDRA"

// User is who the login app signs in.
type User struct {
	Subject string
	Email   string
	Groups  []string
	// AMR and ACR go into the ID token: ["pwd","otp"] for a sign-in with
	// a second factor, ["pwd"] without.
	AMR []string
	ACR string
}

// Hydra is a running hydra with its login and consent app.
type Hydra struct {
	// Issuer is hydra's issuer as its tokens name it (its public URL,
	// with a trailing slash); Admin its admin API.
	Issuer, Admin string

	app *httptest.Server
	mu  sync.Mutex
	usr User
}

// StartHydra starts hydra for t (stopped at its end), or skips t when
// CUSTODY_TEST_HYDRA is not set.
func StartHydra(t testing.TB) *Hydra {
	t.Helper()
	bin := os.Getenv(HydraEnv)
	if bin == "" {
		t.Skip(HydraEnv + " is not set (scripts/test builds hydra with scripts/tool hydra)")
	}
	h := &Hydra{}
	h.app = httptest.NewServer(http.HandlerFunc(h.serveApp))
	t.Cleanup(h.app.Close)
	pub, adm := freePort(t), freePort(t)
	h.Issuer = "http://127.0.0.1:" + strconv.Itoa(pub)
	h.Admin = "http://127.0.0.1:" + strconv.Itoa(adm)
	cmd := childenv.Command(context.Background(), bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = append(cmd.Env, "DSN=memory", "SECRETS_SYSTEM=custody-test-secret-0123456789abcdef",
		"URLS_SELF_ISSUER="+h.Issuer+"/", "URLS_LOGIN="+h.app.URL+"/login", "URLS_CONSENT="+h.app.URL+"/consent",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+strconv.Itoa(pub),
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+strconv.Itoa(adm), "LOG_LEVEL=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hydra: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("hydra output:\n%s", logs.String())
		}
	})
	// Ready when the public port serves the discovery document and the
	// admin port is ready (either may answer first); the issuer exactly
	// as hydra's tokens name it.
	var disc struct {
		Issuer string `json:"issuer"`
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var health map[string]any
		err := getJSON(h.Issuer+"/.well-known/openid-configuration", &disc)
		if err == nil {
			err = getJSON(h.Admin+"/health/ready", &health)
		}
		if err == nil && disc.Issuer != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra not ready after 90 s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.Issuer = disc.Issuer
	// hydra makes its RSA signing keys (ID tokens, access tokens) on first
	// use, which takes tens of seconds on a loaded machine; the key set
	// document makes both now, so a test's own deadlines do not pay for it.
	var keys struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for {
		err := getJSON(strings.TrimSuffix(h.Issuer, "/")+"/.well-known/jwks.json", &keys)
		if err == nil && len(keys.Keys) >= 2 {
			break
		}
		if time.Now().After(deadline.Add(90 * time.Second)) {
			t.Fatalf("hydra made no signing keys after 180 s: %v (%d keys)\n%s", err, len(keys.Keys), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return h
}

func getJSON(u string, out any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// SetUser chooses who the next sign-ins sign in as.
func (h *Hydra) SetUser(u User) {
	h.mu.Lock()
	h.usr = u
	h.mu.Unlock()
}

func (h *Hydra) user() User {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.usr
}

// Client registers an OAuth 2 client: confidential with secret, public
// (PKCE only) when secret is "".
func (h *Hydra) Client(t testing.TB, id, secret string, redirects ...string) {
	t.Helper()
	c := map[string]any{"client_id": id, "grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		"scope": "openid email profile", "redirect_uris": redirects}
	if secret == "" {
		c["token_endpoint_auth_method"] = "none"
	} else {
		c["client_secret"] = secret
		c["token_endpoint_auth_method"] = "client_secret_basic"
	}
	if err := h.admin(http.MethodPost, "/admin/clients", c, nil); err != nil {
		t.Fatalf("create client %s: %v", id, err)
	}
}

// admin calls hydra's admin API.
func (h *Hydra) admin(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.Admin+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// serveApp is the login and consent app: it accepts every login as the
// chosen user and every consent with the scopes asked for, the user's
// email and groups in the ID token.
func (h *Hydra) serveApp(w http.ResponseWriter, r *http.Request) {
	u := h.user()
	var redirect struct {
		To string `json:"redirect_to"`
	}
	var err error
	switch r.URL.Path {
	case "/login":
		ch := url.QueryEscape(r.URL.Query().Get("login_challenge"))
		acc := map[string]any{"subject": u.Subject, "amr": u.AMR, "remember": false}
		if u.ACR != "" {
			acc["acr"] = u.ACR
		}
		err = h.admin(http.MethodPut, "/admin/oauth2/auth/requests/login/accept?login_challenge="+ch, acc, &redirect)
	case "/consent":
		ch := url.QueryEscape(r.URL.Query().Get("consent_challenge"))
		var req struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		if err = h.admin(http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+ch, nil, &req); err != nil {
			break
		}
		claims := map[string]any{"groups": u.Groups}
		if u.Email != "" {
			claims["email"], claims["email_verified"] = u.Email, true
		}
		acc := map[string]any{"grant_scope": req.Scope, "grant_access_token_audience": req.Audience, "remember": false,
			"session": map[string]any{"id_token": claims}}
		err = h.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+ch, acc, &redirect)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, redirect.To, http.StatusFound)
}

// IDToken signs the current user in with the public client clientID
// (registered with redirect URI http://127.0.0.1/callback) through the
// authorization code flow with PKCE, as a CLI would, and returns the raw
// ID token.
func (h *Hydra) IDToken(t testing.TB, clientID string) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	cfg := &oauth2.Config{ClientID: clientID, RedirectURL: "http://127.0.0.1/callback", Scopes: []string{"openid", "email", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: h.Issuer + "oauth2/auth", TokenURL: h.Issuer + "oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	b := Browser()
	b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := b.Get(cfg.AuthCodeURL("state-"+verifier[:8], oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", verifier[8:20])))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in at hydra ended at %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("hydra sent no ID token")
	}
	return raw
}

// SignIn returns what a test opens a sign-in URL with (custody login's
// browser): a Browser that follows the URL in the background, through
// hydra's login and consent as the person SetUser names, to the
// sign-in's redirect.
func SignIn() func(url string) {
	b := Browser()
	return func(u string) {
		go func() {
			if resp, err := b.Get(u); err == nil {
				resp.Body.Close()
			}
		}()
	}
}

// Browser is an HTTP client with a cookie jar that follows redirects, as
// a browser would through a sign-in.
func Browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 60 * time.Second}
}
