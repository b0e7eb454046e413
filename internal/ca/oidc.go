package ca

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Limits on what issuers and clients send.
const (
	// MaxTokenBytes bounds an ID token.
	MaxTokenBytes = 16 << 10
	// MaxJWKSBytes bounds a JWKS document (fetched or read from a file)
	// and maxKeys the keys kept of it.
	MaxJWKSBytes = 256 << 10
	maxKeys      = 64
	// MaxDiscoveryBytes bounds a discovery document.
	MaxDiscoveryBytes = 64 << 10
	// jwksRefresh is the least time between two fetches of an issuer's
	// JWKS, so that tokens naming unknown keys cannot make the server hammer
	// the issuer.
	jwksRefresh = 30 * time.Second
	// jwksMaxAge is how long a fetched JWKS is used before it is fetched
	// again, so that a key the issuer withdrew stops verifying tokens.
	jwksMaxAge = 10 * time.Minute
	// fetchTimeout bounds one discovery and JWKS fetch. A fetch does not
	// end with the request that started it: a client that hangs up must
	// not make a refetch fail, since a failed one keeps the keys held
	// (a withdrawn key among them) for another jwksMaxAge.
	fetchTimeout = 10 * time.Second
)

// signingAlgs are the JWS algorithms accepted: asymmetric only, so neither
// "none" nor an HMAC keyed with a public key can pass.
var signingAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

func algNames() []string {
	out := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = string(a)
	}
	return out
}

// trustedIssuer is an Issuer with its verifier.
type trustedIssuer struct {
	Issuer
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

func newTrustedIssuer(iss Issuer, hc *http.Client, now func() time.Time) (*trustedIssuer, error) {
	ks := &keySet{issuer: iss.URL, hc: hc, now: now}
	if iss.JWKSFile != "" {
		b, err := readLimited(iss.JWKSFile, MaxJWKSBytes)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: couldn't read JWKS file: %w", iss.URL, err)
		}
		if ks.keys, err = parseJWKS(b); err != nil {
			return nil, fmt.Errorf("issuer %s: %s: %w", iss.URL, iss.JWKSFile, err)
		}
		ks.static = true
	}
	v := oidc.NewVerifier(iss.URL, ks, &oidc.Config{ClientID: iss.Audience, SupportedSigningAlgs: algNames(), Now: now})
	return &trustedIssuer{Issuer: iss, keys: ks, verifier: v}, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it, to
// pick the issuer entry that will verify it.
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: not a signed JWT", ErrToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("%w: payload is not base64url", ErrToken)
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Iss == "" {
		return "", fmt.Errorf("%w: payload has no iss claim", ErrToken)
	}
	return c.Iss, nil
}

// keySet is an issuer's JWKS: oidc.KeySet over a static file or the
// discovery document's jwks_uri, refetched when a token names a key it
// does not hold (at most every jwksRefresh) and once it is jwksMaxAge old
// (a failed refetch keeps the keys held, and is retried on the next token).
type keySet struct {
	issuer string
	hc     *http.Client
	now    func() time.Time
	static bool

	mu      sync.Mutex
	jwksURI string
	keys    []jose.JSONWebKey
	fetched time.Time
	lastErr error
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	for attempt := 0; attempt < 2; attempt++ {
		keys, err := k.current(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		for _, key := range keys {
			if kid != "" && key.KeyID != kid {
				continue
			}
			if payload, err := jws.Verify(key); err == nil {
				return payload, nil
			}
		}
	}
	if kid != "" {
		return nil, fmt.Errorf("no key %q of issuer %s verifies the token", kid, k.issuer)
	}
	return nil, fmt.Errorf("no key of issuer %s verifies the token", k.issuer)
}

// current returns the keys, fetching them when none are held yet or when
// refresh is asked and the last fetch is old enough.
func (k *keySet) current(ctx context.Context, refresh bool) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.static {
		return k.keys, nil
	}
	age := k.now().Sub(k.fetched)
	stale := k.keys == nil || age >= jwksMaxAge || (refresh && age >= jwksRefresh)
	if !stale {
		return k.keys, nil
	}
	if k.keys == nil && k.lastErr != nil && k.now().Sub(k.fetched) < time.Second {
		return nil, k.lastErr
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	keys, err := k.fetch(fctx)
	k.fetched = k.now()
	if err != nil {
		k.lastErr = err
		if k.keys != nil {
			return k.keys, nil // keep serving the keys held
		}
		return nil, err
	}
	k.keys, k.lastErr = keys, nil
	return keys, nil
}

// fetch reads the discovery document (once) and the JWKS.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	if k.jwksURI == "" {
		b, err := get(ctx, k.hc, strings.TrimRight(k.issuer, "/")+"/.well-known/openid-configuration", MaxDiscoveryBytes)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the discovery document of %s: %w", k.issuer, err)
		}
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("discovery document of %s is malformed", k.issuer)
		}
		if doc.Issuer != k.issuer {
			return nil, fmt.Errorf("discovery document of %s names issuer %q", k.issuer, doc.Issuer)
		}
		if !strings.HasPrefix(doc.JWKSURI, "https://") && !(strings.HasPrefix(k.issuer, "http://") && strings.HasPrefix(doc.JWKSURI, "http://")) {
			return nil, fmt.Errorf("discovery document of %s names jwks_uri %q, not an https URL", k.issuer, doc.JWKSURI)
		}
		k.jwksURI = doc.JWKSURI
	}
	b, err := get(ctx, k.hc, k.jwksURI, MaxJWKSBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the JWKS of %s: %w", k.issuer, err)
	}
	return parseJWKS(b)
}

// parseJWKS keeps the public signing keys of a JWKS document.
func parseJWKS(b []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS is malformed: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		if !key.Valid() || !key.IsPublic() || (key.Use != "" && key.Use != "sig") {
			continue // symmetric keys, private keys and encryption keys never verify tokens
		}
		if len(keys) == maxKeys {
			return nil, fmt.Errorf("JWKS holds over %d keys", maxKeys)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no public signing key")
	}
	return keys, nil
}

// get fetches url (no redirects: see NewHTTPClient), refusing answers
// other than 200 and bodies over limit.
func get(ctx context.Context, hc *http.Client, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s answered over %d bytes", url, limit)
	}
	return b, nil
}

// errRedirect refuses redirects from issuers.
var errRedirect = errors.New("issuers' discovery documents and key sets are not read through redirects")

// NewHTTPClient is the default client for reaching issuers: no redirects,
// a 10 s timeout.
func NewHTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect }}
}
