package ssotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/custody-dev/custody/internal/sso"
)

// Issuer is a minimal OIDC issuer on loopback (discovery document and
// JWKS) whose ID tokens the test writes claim by claim.
type Issuer struct {
	URL string
	Key *ecdsa.PrivateKey

	fetches   atomic.Int64
	mu        sync.Mutex
	published []jose.JSONWebKey // replaces Key in the JWKS when set
}

// JWKSFetches is how many times the JWKS was fetched.
func (i *Issuer) JWKSFetches() int64 { return i.fetches.Load() }

// Publish makes the JWKS hold keys instead of Key (a rotation).
func (i *Issuer) Publish(keys ...jose.JSONWebKey) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.published = keys
}

// NewIssuer starts an issuer for t.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{Key: key}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss.URL, "authorization_endpoint": iss.URL + "/auth",
			"token_endpoint": iss.URL + "/token", "jwks_uri": iss.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.fetches.Add(1)
		keys := []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
		iss.mu.Lock()
		if iss.published != nil {
			keys = iss.published
		}
		iss.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	})
	return iss
}

// Claims are an ID token's claims for audience aud, issued now and valid
// for an hour, to which the test adds or changes what it needs.
func (i *Issuer) Claims(aud string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": i.URL, "sub": "alice", "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": "alice@example.com", "email_verified": true}
}

// CLIBinding is the binding of the ID tokens CLIClaims makes.
const CLIBinding = "ssotest-binding"

// CLIClaims are Claims of an ID token `custody login` obtained for the
// custody server at server: issued to the CLI's client aud, its nonce
// bound to server with CLIBinding (sso.BindNonce).
func (i *Issuer) CLIClaims(aud, server string) map[string]any {
	c := i.Claims(aud)
	c["nonce"] = sso.BindNonce(server, CLIBinding)
	return c
}

// Sign signs claims with the issuer's key.
func (i *Issuer) Sign(t testing.TB, claims map[string]any) string {
	return SignWith(t, i.Key, claims)
}

// SignWith signs claims with key (ES256, key ID k1).
func SignWith(t testing.TB, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
