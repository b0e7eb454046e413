package sso_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
)

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
		c := iss.Claims("custody-cli")
		c["groups"], c["amr"] = []string{"custody-admins"}, tc.amr
		id, err := p.VerifyCLI(t.Context(), iss.Sign(t, c))
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
		c := iss.Claims("custody-cli")
		c["sub"], c["email"], c["groups"] = "mallory", "alice@example.com", "custody-admins"
		if tc.verified == nil {
			delete(c, "email_verified")
		} else {
			c["email_verified"] = tc.verified
		}
		id, err := p.VerifyCLI(t.Context(), iss.Sign(t, c))
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
