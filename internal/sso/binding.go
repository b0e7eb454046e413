package sso

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Binding an ID token of the CLI's client to one custody server.
//
// Every server that trusts a provider accepts ID tokens issued to the
// CLI's client, so an ID token `custody login --server A` obtained was, on
// its own, a session at any server B of the same provider, for whoever
// held it: A itself, or anyone in the middle of a plain-http A. The
// binding closes that without anything of the provider's: the nonce the
// CLI asks the provider to put in the ID token is BindNonce(A, b) for a
// random b, and the CLI sends b beside the ID token. A server accepts
// the token only when its nonce is BindNonce of its own public URL and
// b: at B, BindNonce(B, b) is not the token's nonce. See
// docs/design/sso-binding.md.

// bindingLabel separates these digests from any other use of SHA-256.
const bindingLabel = "custody login binding v1"

// MaxBinding bounds the binding a client sends.
const MaxBinding = 128

// BindNonce is the nonce of a `custody login` at server (its URL, as
// CanonicalServer reads it) with the random binding.
func BindNonce(server, binding string) string {
	sum := sha256.Sum256([]byte(bindingLabel + "\x00" + CanonicalServer(server) + "\x00" + binding))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CanonicalServer is the form of a server URL that binds: scheme and host
// in lower case, the scheme's default port dropped, the path without a
// trailing slash, no user, query or fragment. A URL that does not parse
// is used as it is (it then binds to nothing a server has).
func CanonicalServer(server string) string {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil || u.Host == "" {
		return server
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/")
}

// checkBinding checks a binding's shape (what a client may send).
func checkBinding(b string) error {
	switch {
	case b == "":
		return fmt.Errorf("ID token refused: it is not bound to a custody server (no binding): sign in with custody login, of this release or newer")
	case len(b) > MaxBinding:
		return fmt.Errorf("ID token refused: binding over %d bytes", MaxBinding)
	}
	return nil
}
