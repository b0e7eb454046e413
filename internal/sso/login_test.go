package sso_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/sso"
)

// The sign-in URL goes to $BROWSER as an argument, and its start is the
// authorization endpoint of whatever provider the server names: one that
// is not an http(s) URL ("--gpu-launcher=sh -c …" is a Chromium switch
// that runs a command) must never reach the browser, nor escape
// sequences the terminal.
func TestLoginRefusesHostileAuthorizationEndpoint(t *testing.T) {
	for _, endpoint := range []string{
		"--gpu-launcher=touch /tmp/custody-pwned",
		"-new-tab",
		"file:///etc/passwd",
		"javascript:alert(1)",
		"https://login.example.com/auth\x1b]8;;https://evil.example\x07",
		"https://login.example.com/auth\nhttps://evil.example",
	} {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch r.URL.Path {
			case "/api/v1/sso":
				json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "client_id": "custody-cli"})
			case "/.well-known/openid-configuration":
				json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": endpoint,
					"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"ES256"}})
			default:
				http.NotFound(w, r)
			}
		}))
		opened := ""
		_, err := sso.CLILogin{Server: srv.URL, Timeout: 2 * time.Second, Open: func(u string) error { opened = u; return nil }}.Login(t.Context())
		srv.Close()
		if opened != "" {
			t.Errorf("authorization endpoint %q: opened %q", endpoint, opened)
		}
		if err == nil || !strings.Contains(err.Error(), "authorization endpoint") {
			t.Errorf("authorization endpoint %q: %v; want a refusal naming it", endpoint, err)
		}
	}
}
