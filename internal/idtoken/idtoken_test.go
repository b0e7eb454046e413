package idtoken

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The token comes from the flag, a file, SIGSTORE_ID_TOKEN or GitHub
// Actions' token service (asked with its bearer token for the audience),
// in that order.
func TestFind(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "bearer request-token" || r.URL.Query().Get("audience") != "sigstore" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		w.Write([]byte(`{"count":1,"value":"actions.jwt.token"}`))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte("file.jwt.token\n"), 0o600)
	actions := map[string]string{EnvActionsRequestURL: srv.URL + "/token?api-version=2.0", EnvActionsRequestToken: "request-token"}
	for _, tc := range []struct {
		name, flag string
		env        map[string]string
		tok, src   string
	}{
		{"flag", "flag.jwt.token", actions, "flag.jwt.token", "flag"},
		{"file", "@" + file, actions, "file.jwt.token", "file"},
		{"SIGSTORE_ID_TOKEN", "", map[string]string{EnvSigstore: "env.jwt.token"}, "env.jwt.token", EnvSigstore},
		{"GitHub Actions", "", actions, "actions.jwt.token", "GitHub Actions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, src, err := Find(context.Background(), Options{Flag: tc.flag, Getenv: env(tc.env)})
			if err != nil || tok != tc.tok || src != tc.src {
				t.Fatalf("got %q from %q, %v", tok, src, err)
			}
		})
	}
	if _, _, err := Find(context.Background(), Options{Getenv: env(nil)}); !errors.Is(err, ErrNone) {
		t.Fatalf("nothing: %v", err)
	}
	bad := map[string]string{EnvActionsRequestURL: srv.URL + "/token", EnvActionsRequestToken: "wrong"}
	if _, _, err := Find(context.Background(), Options{Getenv: env(bad)}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("refused request: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, []byte(strings.Repeat("a", MaxTokenBytes+1)), 0o600)
	if _, _, err := Find(context.Background(), Options{Flag: "@" + big}); err == nil {
		t.Fatal("oversized token file accepted")
	}
}
