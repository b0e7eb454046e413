// Package sso signs people in through an organisation's OpenID Connect
// provider: the dashboard with the authorization code flow (PKCE S256,
// state, nonce) and the CLI, whose ID token the server exchanges for a
// session. What the server believes about a person comes only from the
// signed ID token, verified here (issuer, signature with the provider's
// published keys, audience, expiry, nonce): roles from its groups claim,
// multi-factor authentication from its amr or acr. The userinfo endpoint is
// never asked, so a claim it answers cannot raise anyone's role.
package sso

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/jwks"
)

// DefaultGroupsClaim is the ID token claim roles are mapped from.
const DefaultGroupsClaim = "groups"

// MaxTokenAge is how old (by iat) an ID token may be when it is exchanged
// for a session.
const MaxTokenAge = 10 * time.Minute

// Config configures sign-in through one OIDC provider.
type Config struct {
	// Issuer is the provider's issuer URL (discovery at
	// Issuer/.well-known/openid-configuration), exactly as its ID tokens
	// name it (a trailing slash matters).
	Issuer string
	// ClientID and ClientSecret are the dashboard's client at the
	// provider; the secret is empty for a public client (PKCE alone).
	ClientID, ClientSecret string
	// CLIClientID is the public client `custody login` uses; ID tokens
	// issued to it may be exchanged for a session. Default ClientID.
	CLIClientID string
	// GroupsClaim names the claim holding the person's groups (a string
	// or a list of strings). Default DefaultGroupsClaim.
	GroupsClaim string
	// Roles maps a group to the role its members get.
	Roles map[string]api.Role
	// MFAACR lists acr values that count as multi-factor authentication,
	// besides an amr that shows it (MFA).
	MFAACR []string
	// HTTPClient reaches the provider. Default http.DefaultClient with a
	// 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock ID tokens are checked by. Default time.Now.
	Now func() time.Time
}

// Identity is a person as a verified ID token names them.
type Identity struct {
	Issuer  string     `json:"issuer"`
	Subject string     `json:"subject"`
	Email   string     `json:"email,omitempty"`
	Roles   []api.Role `json:"roles"`
	AMR     []string   `json:"amr,omitempty"`
	ACR     string     `json:"acr,omitempty"`
	// MFA: the token shows multi-factor authentication.
	MFA    bool      `json:"mfa"`
	Expiry time.Time `json:"expiry"`
	// Token is the SHA-256 of the raw ID token (replay detection).
	Token [sha256.Size]byte `json:"-"`
	// nonce is the token's nonce claim.
	nonce string
}

// Name is how the identity is shown and recorded: the verified email when
// the token has one, else the subject.
func (id *Identity) Name() string {
	if id.Email != "" {
		return id.Email
	}
	return id.Subject
}

// Has reports whether the identity has role r.
func (id *Identity) Has(r api.Role) bool { return slices.Contains(id.Roles, r) }

// amrFactor is the factor each RFC 8176 authentication method is: something
// the person knows, has or is. "mfa" and "mca" say several were used.
// One method alone is one factor whatever it is: a provider's passwordless
// sign-in by SMS or e-mail code says ["sms"] or ["otp"].
var amrFactor = map[string]string{
	"pwd": "know", "pin": "know", "kba": "know",
	"otp": "have", "sms": "have", "tel": "have", "hwk": "have", "swk": "have", "sc": "have",
	"fpt": "are", "face": "are", "iris": "are", "retina": "are", "vbm": "are",
}

// Validate checks c.
func (c *Config) Validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("OIDC issuer not set")
	case !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://"):
		return fmt.Errorf("OIDC issuer %q is not an http(s) URL", c.Issuer)
	case c.ClientID == "":
		return errors.New("OIDC client ID not set")
	case len(c.Roles) == 0:
		return errors.New("no group is mapped to a role: nobody could sign in")
	}
	for g, r := range c.Roles {
		if _, err := api.ParseRole(string(r)); err != nil || g == "" {
			return fmt.Errorf("group mapping %q=%q: %v", g, r, err)
		}
	}
	return nil
}

// Provider is an OIDC provider, discovered on first use (a provider that
// is down when the server starts does not stop it; sign-in fails until it
// answers).
type Provider struct {
	cfg  Config
	keys *jwks.Set // the provider's key set: go-oidc's own is never refreshed by age, and refetched for any unknown key

	mu sync.Mutex
	op *oidc.Provider
}

// New returns the provider of cfg (checked, defaults filled in).
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CLIClientID == "" {
		cfg.CLIClientID = cfg.ClientID
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg, keys: jwks.New(cfg.Issuer, cfg.HTTPClient, cfg.Now)}, nil
}

// Config returns the provider's configuration (defaults filled in).
func (p *Provider) Config() Config { return p.cfg }

// discover returns the discovered provider, discovering it now if needed.
func (p *Provider) discover(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.op != nil {
		return p.op, nil
	}
	// go-oidc keeps only the HTTP client of this context for its key set.
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.cfg.HTTPClient), p.cfg.HTTPClient.Timeout)
	defer cancel()
	op, err := oidc.NewProvider(dctx, p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity provider %s unreachable: %w", p.cfg.Issuer, err)
	}
	p.op = op
	return op, nil
}

// oauth returns the dashboard client's OAuth 2 configuration.
func (p *Provider) oauth(op *oidc.Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: op.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
}

// Login is one sign-in in progress: what the callback needs to finish it.
type Login struct {
	State, Nonce, Verifier string
}

// NewLogin makes a fresh state, nonce and PKCE verifier.
func NewLogin() Login {
	return Login{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
}

// AuthURL is where to send the browser to sign in with l, coming back to
// redirect.
func (p *Provider) AuthURL(ctx context.Context, l Login, redirect string) (string, error) {
	op, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	return p.oauth(op, redirect).AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier)), nil
}

// Finish exchanges code (with l's PKCE verifier) for an ID token and
// verifies it for the dashboard's client and l's nonce.
func (p *Provider) Finish(ctx context.Context, l Login, code, redirect string) (*Identity, error) {
	op, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	tok, err := p.oauth(op, redirect).Exchange(ctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return nil, fmt.Errorf("the identity provider refused the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the identity provider sent no ID token")
	}
	return p.verify(ctx, raw, p.cfg.ClientID, l.Nonce)
}

// VerifyCLI verifies an ID token `custody login` obtained for the custody
// server at server (its public URL): issued to the CLI's client, no older
// than MaxTokenAge, its nonce BindNonce(server, binding) (binding.go). A
// token obtained for another server, or with no binding, is refused.
func (p *Provider) VerifyCLI(ctx context.Context, raw, server, binding string) (*Identity, error) {
	if err := checkBinding(binding); err != nil {
		return nil, err
	}
	id, err := p.verify(ctx, raw, p.cfg.CLIClientID, "")
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(id.nonce), []byte(BindNonce(server, binding))) != 1 {
		return nil, fmt.Errorf("ID token refused: it was obtained for another custody server, not this one (%s): run custody login --server %s",
			CanonicalServer(server), CanonicalServer(server))
	}
	return id, nil
}

// claims are the ID token claims read besides the standard ones.
type claims struct {
	Email    string   `json:"email"`
	Verified *bool    `json:"email_verified"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	AZP      string   `json:"azp"`
	IssuedAt int64    `json:"iat"`
}

// verify checks raw (signature, issuer, audience aud, expiry; nonce when
// not empty) and reads the identity from it.
func (p *Provider) verify(ctx context.Context, raw, aud, nonce string) (*Identity, error) {
	t, err := oidc.NewVerifier(p.cfg.Issuer, p.keys, &oidc.Config{ClientID: aud, SupportedSigningAlgs: jwks.AlgNames(), Now: p.cfg.Now}).Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("ID token refused: %w", err)
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("ID token refused: its nonce is not this sign-in's (replayed?)")
	}
	var c claims
	all := map[string]any{}
	if err := t.Claims(&c); err != nil {
		return nil, fmt.Errorf("ID token refused: %w", err)
	}
	if err := t.Claims(&all); err != nil {
		return nil, fmt.Errorf("ID token refused: %w", err)
	}
	if len(t.Audience) > 1 && c.AZP != aud {
		return nil, errors.New("ID token refused: issued to another client (azp)")
	}
	if nonce == "" && (c.IssuedAt == 0 || p.cfg.Now().Sub(time.Unix(c.IssuedAt, 0)) > MaxTokenAge) {
		return nil, fmt.Errorf("ID token refused: issued more than %s ago; run custody login again", MaxTokenAge)
	}
	id := &Identity{Issuer: t.Issuer, Subject: t.Subject, AMR: c.AMR, ACR: c.ACR, Expiry: t.Expiry, Token: sha256.Sum256([]byte(raw)), nonce: t.Nonce}
	if c.Verified != nil && *c.Verified { // absent: an address the person may have typed in
		id.Email = c.Email
	}
	id.Roles = p.roles(all[p.cfg.GroupsClaim])
	id.MFA = p.mfa(c.AMR, c.ACR)
	return id, nil
}

// roles maps the groups claim v (a string or a list) to roles, in
// api.Roles order.
func (p *Provider) roles(v any) []api.Role {
	var groups []string
	switch g := v.(type) {
	case string:
		groups = []string{g}
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok {
				groups = append(groups, s)
			}
		}
	}
	var out []api.Role
	for _, r := range api.Roles() {
		for _, g := range groups {
			if p.cfg.Roles[g] == r {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// mfa reports whether amr or acr shows multi-factor authentication.
func (p *Provider) mfa(amr []string, acr string) bool { return ShowsMFA(amr, acr, p.cfg.MFAACR) }

// ShowsMFA reports whether an ID token's amr (RFC 8176 methods) or acr
// shows multi-factor authentication: amr saying "mfa" or "mca", or naming
// methods of two factors (a password and a one-time code), or an acr
// listed in mfaACR. It is the one rule for sign-in (Provider) and for the
// certificates of people (package ca).
func ShowsMFA(amr []string, acr string, mfaACR []string) bool {
	factors := map[string]bool{}
	for _, m := range amr {
		if m == "mfa" || m == "mca" {
			return true
		}
		if f := amrFactor[m]; f != "" {
			factors[f] = true
		}
	}
	return len(factors) >= 2 || acr != "" && slices.Contains(mfaACR, acr)
}

// NeedsMFA reports whether role r's actions require multi-factor
// authentication: admin and approver.
func NeedsMFA(r api.Role) bool { return r == api.RoleAdmin || r == api.RoleApprover }
