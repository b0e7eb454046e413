package sso_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
)

// testServer is the custody server the tests' CLI ID tokens are bound to.
const testServer = "https://custody.example.com"

func provider(t *testing.T, issuer string) *sso.Provider {
	t.Helper()
	p, err := sso.New(sso.Config{Issuer: issuer, ClientID: "custody-cli", Roles: map[string]api.Role{"custody-admins": api.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// MFA means two factors: an amr that names one method, even one that is
// often a second factor (an SMS code, a one-time password, a security
// key), is one factor. Passwordless sign-in by SMS or e-mail code says
// ["sms"] or ["otp"]; counting that as MFA let one factor do admin work.
func TestMFANeedsTwoFactors(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	p := provider(t, iss.URL)
	for _, tc := range []struct {
		amr  []string
		want bool
	}{
		{[]string{"pwd"}, false},
		{[]string{"sms"}, false},
		{[]string{"otp"}, false},
		{[]string{"tel"}, false},
		{[]string{"hwk"}, false},
		{[]string{"face"}, false},
		{[]string{"otp", "sms"}, false}, // two possession methods: one factor
		{[]string{"pwd", "otp"}, true},
		{[]string{"pwd", "sms"}, true},
		{[]string{"hwk", "pin"}, true},
		{[]string{"hwk", "fpt"}, true},
		{[]string{"mfa"}, true},
		{[]string{"pwd", "mfa"}, true},
		{[]string{"mca"}, true},
	} {
		c := iss.CLIClaims("custody-cli", testServer)
		c["groups"], c["amr"] = []string{"custody-admins"}, tc.amr
		id, err := p.VerifyCLI(t.Context(), iss.Sign(t, c), testServer, ssotest.CLIBinding)
		if err != nil {
			t.Fatal(err)
		}
		if id.MFA != tc.want {
			t.Errorf("amr %v: MFA %v, want %v", tc.amr, id.MFA, tc.want)
		}
	}
}

// The name a person acts under (audit entries, the dashboard) is their
// email only when the provider says it verified it: some providers send
// an email the user typed in and no email_verified claim at all, so
// anyone could act under a colleague's address.
func TestUnverifiedEmailIsNotTheName(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	p := provider(t, iss.URL)
	for _, tc := range []struct {
		verified any // nil: no claim
		want     string
	}{
		{true, "alice@example.com"},
		{false, "mallory"},
		{nil, "mallory"},
		{"true", "mallory"}, // a string is not the boolean the spec says
	} {
		c := iss.CLIClaims("custody-cli", testServer)
		c["sub"], c["email"], c["groups"] = "mallory", "alice@example.com", "custody-admins"
		if tc.verified == nil {
			delete(c, "email_verified")
		} else {
			c["email_verified"] = tc.verified
		}
		id, err := p.VerifyCLI(t.Context(), iss.Sign(t, c), testServer, ssotest.CLIBinding)
		if err != nil {
			if tc.verified == "true" {
				continue // refusing the token is as good
			}
			t.Fatal(err)
		}
		if id.Name() != tc.want {
			t.Errorf("email_verified %v: acts as %q, want %q", tc.verified, id.Name(), tc.want)
		}
	}
}

// signKid signs claims with key under key ID kid.
func signKid(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// POST /api/v1/sessions is anonymous: tokens naming keys the provider
// does not have must not make the server fetch the provider's key set
// once each (the server would hammer the provider for anyone).
func TestUnknownKeysFetchRarely(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	p := provider(t, iss.URL)
	c := iss.CLIClaims("custody-cli", testServer)
	c["groups"] = "custody-admins"
	if _, err := p.VerifyCLI(t.Context(), iss.Sign(t, c), testServer, ssotest.CLIBinding); err != nil {
		t.Fatal(err)
	}
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	before := iss.JWKSFetches()
	for i := range 30 {
		if _, err := p.VerifyCLI(t.Context(), signKid(t, forger, fmt.Sprintf("k-%d", i), c), testServer, ssotest.CLIBinding); err == nil {
			t.Fatal("a token of an unknown key verified")
		}
	}
	if n := iss.JWKSFetches() - before; n > 1 {
		t.Errorf("30 tokens of unknown keys made %d fetches of the provider's key set; want at most 1", n)
	}
}

// A key the provider withdrew (rotated out after a leak) stops verifying
// tokens once the key set is old, even when nobody sends a token of the
// new key: whoever holds the old key sends only tokens it verifies.
func TestWithdrawnProviderKey(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	now := time.Now()
	p, err := sso.New(sso.Config{Issuer: iss.URL, ClientID: "custody-cli", Roles: map[string]api.Role{"custody-admins": api.RoleAdmin},
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	claims := func() map[string]any {
		c := iss.CLIClaims("custody-cli", testServer)
		c["groups"], c["iat"], c["exp"] = "custody-admins", now.Unix(), now.Add(time.Hour).Unix()
		return c
	}
	if _, err := p.VerifyCLI(t.Context(), iss.Sign(t, claims()), testServer, ssotest.CLIBinding); err != nil {
		t.Fatal(err)
	}
	rotated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss.Publish(jose.JSONWebKey{Key: &rotated.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"})
	now = now.Add(11 * time.Minute)
	if _, err := p.VerifyCLI(t.Context(), iss.Sign(t, claims()), testServer, ssotest.CLIBinding); err == nil {
		t.Fatal("a token of the withdrawn key verified 11 minutes after the rotation")
	}
	if _, err := p.VerifyCLI(t.Context(), signKid(t, rotated, "k2", claims()), testServer, ssotest.CLIBinding); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
}
