// Package catest runs an OIDC issuer on loopback shaped like GitHub
// Actions' (https://token.actions.githubusercontent.com): a discovery
// document, a JWKS and RS256 ID tokens with GitHub's claims, for tests
// and benchmarks of package ca and of custody's keyless signing.
package catest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer. Close stops it.
type Issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string

	mu        sync.Mutex
	jobs      map[string]Workflow // Actions token service: request token → job
	jwksExtra []jose.JSONWebKey
	jwks      *jose.JSONWebKeySet                               // replaces the key set when set
	discovery func(w http.ResponseWriter, r *http.Request) bool // overrides the discovery answer when it returns true
}

// New starts an issuer on 127.0.0.1 with a fresh RSA key.
func New() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	is := &Issuer{key: key, kid: fmt.Sprintf("test-%d", time.Now().UnixNano()), jobs: map[string]Workflow{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", is.serveDiscovery)
	mux.HandleFunc("GET /.well-known/jwks", is.serveJWKS)
	mux.HandleFunc("GET /_apis/idtoken", is.serveActionsToken)
	is.srv = httptest.NewServer(mux)
	return is, nil
}

// URL is the issuer URL (the iss claim).
func (is *Issuer) URL() string { return is.srv.URL }

// Close stops the issuer.
func (is *Issuer) Close() { is.srv.Close() }

// Key returns the issuer's signing key and its key ID.
func (is *Issuer) Key() (crypto.Signer, string) { return is.key, is.kid }

// AddJWKSKey also publishes k in the JWKS.
func (is *Issuer) AddJWKSKey(k jose.JSONWebKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwksExtra = append(is.jwksExtra, k)
}

// OverrideJWKS makes the issuer publish set instead of its own key.
func (is *Issuer) OverrideJWKS(set jose.JSONWebKeySet) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwks = &set
}

// OverrideDiscovery makes f answer discovery requests when it returns true.
func (is *Issuer) OverrideDiscovery(f func(w http.ResponseWriter, r *http.Request) bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.discovery = f
}

func (is *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	f := is.discovery
	is.mu.Unlock()
	if f != nil && f(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                is.URL(),
		"jwks_uri":                              is.URL() + "/.well-known/jwks",
		"subject_types_supported":               []string{"public", "pairwise"},
		"response_types_supported":              []string{"id_token"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "job_workflow_ref"},
	})
}

// JWKS is the issuer's key set document.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	keys := append([]jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig"}}, is.jwksExtra...)
	if is.jwks != nil {
		keys = is.jwks.Keys
	}
	is.mu.Unlock()
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	return b
}

func (is *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(is.JWKS())
}

// Workflow is a GitHub Actions job, as its token describes it.
type Workflow struct {
	Repository string // "octo-org/app"
	Workflow   string // path in the repository: ".github/workflows/release.yml"
	Ref        string // "refs/heads/main"
	SHA        string // commit; default forty 'a'
	Event      string // default "push"
	RunID      string // default "4242"
	Audience   string // default "sigstore"
}

// Claims are the claims GitHub Actions puts in a job's ID token, issued
// now and valid for five minutes (as GitHub's are).
func (is *Issuer) Claims(wf Workflow) map[string]any {
	if wf.SHA == "" {
		wf.SHA = strings.Repeat("a", 40)
	}
	if wf.Event == "" {
		wf.Event = "push"
	}
	if wf.RunID == "" {
		wf.RunID = "4242"
	}
	if wf.Audience == "" {
		wf.Audience = "sigstore"
	}
	owner, _, _ := strings.Cut(wf.Repository, "/")
	now := time.Now()
	jobRef := wf.Repository + "/" + wf.Workflow + "@" + wf.Ref
	return map[string]any{
		"iss": is.URL(), "aud": wf.Audience, "sub": "repo:" + wf.Repository + ":ref:" + wf.Ref,
		"iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d", now.UnixNano()), "ref": wf.Ref, "ref_type": "branch", "sha": wf.SHA,
		"repository": wf.Repository, "repository_id": "1001", "repository_owner": owner, "repository_owner_id": "2002",
		"repository_visibility": "private", "run_id": wf.RunID, "run_number": "7", "run_attempt": "1",
		"runner_environment": "github-hosted", "actor": "octocat", "actor_id": "3003", "workflow": "Release",
		"workflow_ref": jobRef, "workflow_sha": wf.SHA, "job_workflow_ref": jobRef, "job_workflow_sha": wf.SHA,
		"event_name": wf.Event, "head_ref": "", "base_ref": "",
	}
}

// ActionsJob is what a GitHub Actions runner gives a job of wf that may
// ask for ID tokens (permissions: id-token: write): the token service's
// URL and the bearer token to ask it with, as the job sees them in
// ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN. Asked
// with that bearer token, the service answers {"count": N, "value": JWT}:
// a fresh token of wf for the audience of the request's ?audience= (the
// issuer URL when absent), as GitHub's does; else 401.
func (is *Issuer) ActionsJob(wf Workflow) (requestURL, requestToken string) {
	b := make([]byte, 16)
	rand.Read(b)
	requestToken = fmt.Sprintf("%x", b)
	is.mu.Lock()
	is.jobs[requestToken] = wf
	is.mu.Unlock()
	return is.URL() + "/_apis/idtoken?api-version=2.0", requestToken
}

func (is *Issuer) serveActionsToken(w http.ResponseWriter, r *http.Request) {
	req, ok := strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	is.mu.Lock()
	wf, known := is.jobs[req]
	is.mu.Unlock()
	if !ok || !known {
		http.Error(w, `{"message":"bad request token"}`, http.StatusUnauthorized)
		return
	}
	wf.Audience = r.URL.Query().Get("audience")
	if wf.Audience == "" {
		wf.Audience = is.URL()
	}
	tok, err := is.Token(is.Claims(wf))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"count": len(tok), "value": tok})
}

// Token signs claims with the issuer's key (RS256, its key ID).
func (is *Issuer) Token(claims map[string]any) (string, error) {
	return SignToken(is.key, jose.RS256, is.kid, claims)
}

// SignToken signs claims as a compact JWS with key and alg under key ID kid.
func SignToken(key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := sg.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
