// Package jwks is an OIDC issuer's JSON Web Key Set as a verifier of its
// tokens (go-oidc's oidc.KeySet), for the certificate authority's issuers
// and the sign-in provider: asymmetric algorithms only, the key set found
// by the issuer's discovery document (or given), refetched when a token
// names a key it does not hold at most every Refresh (so that tokens
// naming unknown keys cannot make the server hammer the issuer), and once
// it is MaxAge old (so that a key the issuer withdrew stops verifying
// tokens even when nobody sends a token of its new key).
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Limits and intervals.
const (
	// MaxBytes bounds a JWKS document (fetched or read from a file) and
	// maxKeys the keys kept of it.
	MaxBytes = 256 << 10
	maxKeys  = 64
	// MaxDiscoveryBytes bounds a discovery document.
	MaxDiscoveryBytes = 64 << 10
	// Refresh is the least time between two fetches of an issuer's JWKS.
	Refresh = 30 * time.Second
	// MaxAge is how long a fetched JWKS is used before it is fetched again.
	MaxAge = 10 * time.Minute
	// fetchTimeout bounds one discovery and JWKS fetch. A fetch does not
	// end with the request that started it: a client that hangs up must
	// not make a refetch fail, since a failed one keeps the keys held
	// (a withdrawn key among them) for another MaxAge.
	fetchTimeout = 10 * time.Second
)

// SigningAlgs are the JWS algorithms accepted: asymmetric only, so neither
// "none" nor an HMAC keyed with a public key can pass.
var SigningAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// AlgNames are SigningAlgs as strings (oidc.Config.SupportedSigningAlgs).
func AlgNames() []string {
	out := make([]string, len(SigningAlgs))
	for i, a := range SigningAlgs {
		out[i] = string(a)
	}
	return out
}

// Set is an issuer's key set. It is safe for concurrent use.
type Set struct {
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

// New is the key set of issuer, fetched on first use from the jwks_uri
// of its discovery document (issuer/.well-known/openid-configuration)
// with hc; now is the clock (nil: time.Now).
func New(issuer string, hc *http.Client, now func() time.Time) *Set {
	if now == nil {
		now = time.Now
	}
	return &Set{issuer: issuer, hc: hc, now: now}
}

// Static is the key set of issuer held in the JWKS document b (a file, for
// air-gapped setups): never fetched.
func Static(issuer string, b []byte) (*Set, error) {
	keys, err := Parse(b)
	if err != nil {
		return nil, err
	}
	return &Set{issuer: issuer, static: true, keys: keys, now: time.Now}, nil
}

// VerifySignature implements oidc.KeySet.
func (k *Set) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, SigningAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	for attempt := 0; attempt < 2; attempt++ {
		keys, fetched, err := k.current(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		if attempt > 0 && !fetched {
			break // the same keys again
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
// refresh is asked and the last fetch is old enough (a failed refetch
// keeps the keys held, and is retried on the next token).
// It reports whether it fetched them now.
func (k *Set) current(ctx context.Context, refresh bool) ([]jose.JSONWebKey, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.static {
		return k.keys, false, nil
	}
	age := k.now().Sub(k.fetched)
	stale := k.keys == nil || age >= MaxAge || (refresh && age >= Refresh)
	if !stale {
		return k.keys, false, nil
	}
	if k.keys == nil && k.lastErr != nil && k.now().Sub(k.fetched) < time.Second {
		return nil, false, k.lastErr
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	keys, err := k.fetch(fctx)
	k.fetched = k.now()
	if err != nil {
		k.lastErr = err
		if k.keys != nil {
			return k.keys, false, nil // keep serving the keys held
		}
		return nil, false, err
	}
	k.keys, k.lastErr = keys, nil
	return keys, true, nil
}

// fetch reads the discovery document (once) and the JWKS.
func (k *Set) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
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
	b, err := get(ctx, k.hc, k.jwksURI, MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the JWKS of %s: %w", k.issuer, err)
	}
	return Parse(b)
}

// Parse keeps the public signing keys of a JWKS document.
func Parse(b []byte) ([]jose.JSONWebKey, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("JWKS is over %d bytes", MaxBytes)
	}
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

// get fetches url, refusing answers other than 200 and bodies over limit.
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
