package sso_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/sso"
)

// The spellings of one server URL bind alike; other servers do not.
func TestCanonicalServer(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://custody.example.com", "https://custody.example.com"},
		{"HTTPS://Custody.Example.COM/", "https://custody.example.com"},
		{"https://custody.example.com:443", "https://custody.example.com"},
		{"http://127.0.0.1:80/", "http://127.0.0.1"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://example.com/custody/", "https://example.com/custody"},
		{"https://user@example.com/?q#f", "https://example.com"},
		{"http://[::1]:8080/", "http://[::1]:8080"},
		{"http://[::1]/", "http://[::1]"},
	} {
		if got := sso.CanonicalServer(tc.in); got != tc.want {
			t.Errorf("CanonicalServer(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	a := sso.BindNonce("https://custody.example.com/", "b")
	if a != sso.BindNonce("https://CUSTODY.example.com:443", "b") {
		t.Error("two spellings of one server bind differently")
	}
	for _, other := range []string{"https://custody.example.org", "http://custody.example.com", "https://custody.example.com:8443", "https://custody.example.com/x"} {
		if sso.BindNonce(other, "b") == a {
			t.Errorf("%s binds as https://custody.example.com", other)
		}
	}
	if sso.BindNonce("https://custody.example.com", "c") == a {
		t.Error("another binding gives the same nonce")
	}
}
