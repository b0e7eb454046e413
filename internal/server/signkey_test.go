package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// TestSignKeyRefusals: who may not have the signing service sign is told
// what is wrong and what to do, never `no builder key ""`: a person
// signed in with the builder role (a session is scoped to no builder
// key), whatever key they ask for; a builder token scoped to a key this
// server does not hold; an admin naming a key it does not hold. Nothing
// is signed or indexed.
func TestSignKeyRefusals(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	roles := map[string]api.Role{"custody-builders": api.RoleBuilder, "custody-admins": api.RoleAdmin}
	p, err := sso.New(sso.Config{Issuer: iss.URL, ClientID: dashboardClient, CLIClientID: cliClient, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, server.Config{SSO: p})
	c := iss.CLIClaims(cliClient, ts.url)
	c["groups"], c["amr"] = []string{"custody-builders"}, []string{"pwd", "otp"}
	code, person := exchange(t, ts.url, iss.Sign(t, c))
	if code != http.StatusOK {
		t.Fatalf("exchange = %d %s", code, person)
	}
	gone, err := tokenfile.CreateToken(ts.dir, api.RoleBuilder, "gone", "")
	if err != nil {
		t.Fatal(err)
	}
	before := count(t, ts)
	for _, tc := range []struct {
		name, token, key string
		want             []string
	}{
		{"person, default key", person, "", []string{"alice@example.com", "signed-in person", "no builder key", "custody token create --role builder --key", "custody build --key"}},
		{"person, the server's key", person, api.DefaultBuilderKey, []string{"signed-in person", "custody token create --role builder --key"}},
		{"token of a key the server lacks", gone, "", []string{`builder key "gone"`, "this server holds: builder", "--builder-key gone="}},
		{"admin naming a key the server lacks", ts.tokens[api.RoleAdmin], "nope", []string{`builder key "nope"`, "this server holds: builder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := json.Marshal(map[string]any{"statement": json.RawMessage(statement(t, "signkey-"+tc.name, "app")), "key": tc.key})
			a := do(t, ts, http.MethodPost, "/api/v1/sign", tc.token, req)
			if a.status != http.StatusForbidden || strings.Contains(a.body, `no builder key ""`) {
				t.Errorf("sign = %d %q; want 403 saying what is wrong", a.status, a.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.body, w) {
					t.Errorf("sign = %d %q; want it to say %q", a.status, a.body, w)
				}
			}
			if strings.Count(strings.TrimSpace(a.body), "\n") != 0 {
				t.Errorf("refusal %q is more than one line", a.body)
			}
		})
	}
	if n := count(t, ts); n != before {
		t.Errorf("index holds %d records after the refusals; want %d", n, before)
	}
}
