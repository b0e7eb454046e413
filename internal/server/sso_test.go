package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/signer"
)

const (
	dashboardClient = "custody-dashboard"
	cliClient       = "custody-cli"
)

// ssoRoles is the group mapping of the tests' servers.
var ssoRoles = map[string]api.Role{"custody-admins": api.RoleAdmin, "custody-auditors": api.RoleAuditor,
	"custody-approvers": api.RoleApprover, "custody-deployers": api.RoleDeployer}

// ssoProvider is the server's sign-in configuration for issuer.
func ssoProvider(t *testing.T, issuer, secret string, acr ...string) *sso.Provider {
	t.Helper()
	p, err := sso.New(sso.Config{Issuer: issuer, ClientID: dashboardClient, ClientSecret: secret, CLIClientID: cliClient,
		Roles: ssoRoles, MFAACR: acr})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// call sends method path with bearer and body (nil: none) and returns
// the status and the answer.
func call(t *testing.T, base, method, path, bearer string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// exchange trades an ID token for a session; it returns the status and
// the session secret ("" when refused) or the refusal.
func exchange(t *testing.T, base, idToken string) (int, string) {
	t.Helper()
	code, body := call(t, base, "POST", "/api/v1/sessions", "", api.SessionRequest{IDToken: idToken, Binding: ssotest.CLIBinding})
	if code != http.StatusOK {
		return code, body
	}
	var a api.SessionAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil || !strings.HasPrefix(a.Session, server.SessionPrefix) {
		t.Fatalf("session answer %s: %v", body, err)
	}
	return code, a.Session
}

// A person signs in with `custody login`: the ID token the provider issued
// to the CLI's client is exchanged for a session; admin actions need MFA,
// and the audit trail names the person, the issuer and the session.
func TestSSOSessionMFA(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	ts := start(t, server.Config{SSO: ssoProvider(t, iss.URL, "")})

	admin := func(amr ...string) map[string]any {
		c := iss.CLIClaims(cliClient, ts.url)
		c["groups"], c["amr"] = []string{"custody-admins", "staff"}, amr
		return c
	}
	code, pwdOnly := exchange(t, ts.url, iss.Sign(t, admin("pwd")))
	if code != http.StatusOK {
		t.Fatalf("exchange without MFA = %d %s; want a session (reading is allowed)", code, pwdOnly)
	}
	code, body := call(t, ts.url, "POST", "/api/v1/tokens/revoke", pwdOnly, api.RevokeRequest{Name: "test builder"})
	if code != http.StatusForbidden || !strings.Contains(body, "admin actions require multi-factor authentication") ||
		!strings.Contains(body, "amr pwd") || !strings.Contains(body, "custody login") {
		t.Errorf("admin action without MFA = %d %q; want 403 saying MFA is required and how", code, body)
	}
	if code, _ := call(t, ts.url, "GET", "/api/v1/tokens", ts.tokens[api.RoleAdmin], nil); code != http.StatusOK {
		t.Errorf("admin bearer token refused (%d): bearer tokens must keep working", code)
	}

	code, mfa := exchange(t, ts.url, iss.Sign(t, admin("pwd", "otp")))
	if code != http.StatusOK {
		t.Fatalf("exchange with MFA = %d %s", code, mfa)
	}
	if code, body := call(t, ts.url, "POST", "/api/v1/tokens/revoke", mfa, api.RevokeRequest{Name: "test builder"}); code != http.StatusOK {
		t.Fatalf("admin action with MFA = %d %s", code, body)
	}
	e := lastAudit(t, ts, "token.revoked")
	sid := strings.TrimPrefix(mfa, server.SessionPrefix)
	if e.Identity != "alice@example.com" || e.Issuer != iss.URL || len(e.Session) != 12 || strings.Contains(e.Session, sid) ||
		e.Token != "admin:alice@example.com" {
		t.Errorf("audit entry names %q %q session %q token %q; want the person, issuer and short session", e.Identity, e.Issuer, e.Session, e.Token)
	}
	if started := lastAudit(t, ts, "session.started"); started.Session != e.Session {
		t.Errorf("session.started names session %q, the action %q", started.Session, e.Session)
	}

	// Ending the session: its secret is refused afterwards.
	if code, body := call(t, ts.url, "POST", "/api/v1/sessions/end", mfa, nil); code != http.StatusNoContent {
		t.Fatalf("end session = %d %s", code, body)
	}
	if code, body := call(t, ts.url, "GET", "/api/v1/tokens", mfa, nil); code != http.StatusUnauthorized || !strings.Contains(body, "custody login") {
		t.Errorf("ended session = %d %q; want 401", code, body)
	}
}

// lastAudit returns the newest audit entry of action.
func lastAudit(t *testing.T, ts *testServer, action string) *attest.AuditPredicate {
	t.Helper()
	evs, err := newClient(t, ts, api.RoleAuditor).Search(t.Context(), api.Query{PredicateType: api.PredicateAudit})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		st, err := attest.ParseStatement(dssePayload(t, evs[i].Bundle))
		if err != nil {
			continue
		}
		p, err := attest.ParseAudit(st.Predicate)
		if err == nil && p.Action == action {
			return p
		}
	}
	t.Fatalf("no %s audit entry", action)
	return nil
}

// Roles come from the groups claim; an MFA role needs MFA even when the
// person has other roles; a configured acr counts as MFA.
func TestSSORoles(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	ts := start(t, server.Config{SSO: ssoProvider(t, iss.URL, "", "urn:example:mfa")})
	sign := func(groups []string, acr string) string {
		c := iss.CLIClaims(cliClient, ts.url)
		c["groups"], c["amr"] = groups, []string{"pwd"}
		if acr != "" {
			c["acr"] = acr
		}
		_, s := exchange(t, ts.url, iss.Sign(t, c))
		return s
	}
	deployer := sign([]string{"custody-deployers"}, "")
	if code, body := call(t, ts.url, "GET", "/api/v1/deployments", deployer, nil); code != http.StatusOK {
		t.Errorf("deployer reading deployments = %d %s", code, body)
	}
	if code, body := call(t, ts.url, "GET", "/api/v1/tokens", deployer, nil); code != http.StatusForbidden || !strings.Contains(body, "may not do this") {
		t.Errorf("deployer listing tokens = %d %q; want 403", code, body)
	}
	both := sign([]string{"custody-approvers", "custody-deployers"}, "")
	if code, _ := call(t, ts.url, "GET", "/api/v1/policies/prod", both, nil); code == http.StatusForbidden {
		t.Errorf("approver+deployer without MFA refused a read")
	}
	approver := sign([]string{"custody-approvers"}, "")
	if code, body := call(t, ts.url, "POST", "/api/v1/evidence", approver, map[string]string{}); code != http.StatusForbidden ||
		!strings.Contains(body, "approver actions require multi-factor authentication") {
		t.Errorf("approver push without MFA = %d %q; want 403 naming MFA", code, body)
	}
	acr := sign([]string{"custody-admins"}, "urn:example:mfa")
	if code, body := call(t, ts.url, "GET", "/api/v1/tokens", acr, nil); code != http.StatusOK {
		t.Errorf("admin with the configured acr = %d %s; want 200", code, body)
	}
	if code, body := exchange(t, ts.url, iss.Sign(t, iss.CLIClaims(cliClient, ts.url))); code != http.StatusForbidden || !strings.Contains(body, "no custody role") {
		t.Errorf("no groups = %d %q; want 403", code, body)
	}
}

// ID tokens the server must not exchange: each refused with a one-line
// reason, none starting a session.
func TestSSOTokenRefusals(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	other := ssotest.NewIssuer(t)
	ts := start(t, server.Config{SSO: ssoProvider(t, iss.URL, "")})
	claims := func(edit func(map[string]any)) map[string]any {
		c := iss.CLIClaims(cliClient, ts.url)
		c["groups"], c["amr"] = []string{"custody-admins"}, []string{"pwd", "otp"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	unsigned := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		b, _ := json.Marshal(claims(nil))
		return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	}
	replayed := iss.Sign(t, claims(nil))
	if code, body := exchange(t, ts.url, replayed); code != http.StatusOK {
		t.Fatalf("first exchange = %d %s", code, body)
	}
	cases := []struct {
		name, token, want string
		code              int
	}{
		{"replayed", replayed, "already exchanged", 401},
		{"dashboard client's token", iss.Sign(t, claims(func(c map[string]any) { c["aud"] = dashboardClient })), "audience", 401},
		{"another client's", iss.Sign(t, claims(func(c map[string]any) { c["aud"] = "someone-else" })), "audience", 401},
		{"two audiences, azp other", iss.Sign(t, claims(func(c map[string]any) { c["aud"] = []string{cliClient, "x"}; c["azp"] = "x" })), "azp", 401},
		{"expired", iss.Sign(t, claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "expired", 401},
		{"stale", iss.Sign(t, claims(func(c map[string]any) { c["iat"] = time.Now().Add(-time.Hour).Unix() })), "custody login again", 401},
		{"groups spoofed with another key", ssotest.SignWith(t, attacker, claims(nil)), "signature", 401},
		{"other issuer", other.Sign(t, claims(func(c map[string]any) { c["iss"] = other.URL })), "refused", 401},
		{"other issuer claiming ours", other.Sign(t, claims(nil)), "signature", 401},
		{"unsigned", unsigned(), "refused", 401},
		{"garbage", "not.a.token", "refused", 401},
		// An ID token of the CLI's client obtained for another custody
		// server of the same provider (one that took it from custody
		// login --server EVIL): its nonce binds it there.
		{"obtained for another server", iss.Sign(t, claims(func(c map[string]any) { c["nonce"] = sso.BindNonce("https://evil.example.com", ssotest.CLIBinding) })), "another custody server", 401},
		{"no nonce", iss.Sign(t, claims(func(c map[string]any) { delete(c, "nonce") })), "another custody server", 401},
	}
	for _, c := range cases {
		code, body := exchange(t, ts.url, c.token)
		if code != c.code || !strings.Contains(body, c.want) || strings.Count(strings.TrimSpace(body), "\n") != 0 {
			t.Errorf("%s: %d %q; want %d naming %q on one line", c.name, code, body, c.code, c.want)
		}
	}
	fresh := iss.Sign(t, claims(nil))
	for _, b := range []string{"", "another-binding", strings.Repeat("b", sso.MaxBinding+1)} {
		code, body := call(t, ts.url, "POST", "/api/v1/sessions", "", api.SessionRequest{IDToken: fresh, Binding: b})
		if code != http.StatusUnauthorized || !strings.Contains(body, "refused") {
			t.Errorf("binding %.20q = %d %q; want 401", b, code, body)
		}
	}
	if code, body := exchange(t, ts.url, fresh); code != http.StatusOK {
		t.Errorf("the same token with its binding after the refusals = %d %q; want a session (a refusal records nothing)", code, body)
	}
	if code, _ := call(t, ts.url, "POST", "/api/v1/sessions", "", strings.Repeat("x", 20000)); code != http.StatusBadRequest {
		t.Errorf("oversized body = %d; want 400", code)
	}
	if code, body := call(t, ts.url, "GET", "/api/v1/tokens", server.SessionPrefix+"made-up", nil); code != http.StatusUnauthorized {
		t.Errorf("made-up session = %d %s; want 401", code, body)
	}
}

// Anyone may start a dashboard sign-in, and each start is kept until its
// callback. A flood of starts must not end anyone's session (they shared
// one bounded table, the least recently used entry evicted) nor forget
// which ID tokens were already exchanged (a copy would then be worth a
// second session).
func TestSSOStartFloodKeepsSessions(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	ts := start(t, server.Config{SSO: ssoProvider(t, iss.URL, ""), UI: func(server.UIDeps) (http.Handler, error) {
		return http.NotFoundHandler(), nil
	}})
	c := iss.CLIClaims(cliClient, ts.url)
	c["groups"] = []string{"custody-auditors"}
	idToken := iss.Sign(t, c)
	code, sess := exchange(t, ts.url, idToken)
	if code != http.StatusOK {
		t.Fatalf("exchange = %d %s", code, sess)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 4200 {
		resp, err := noRedirect.Get(ts.url + "/ui/sso/start")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if code, body := call(t, ts.url, "GET", "/api/v1/evidence?limit=1", sess, nil); code != http.StatusOK {
		t.Errorf("session after a flood of sign-in starts = %d %q; want it kept", code, body)
	}
	if code, body := exchange(t, ts.url, idToken); code != http.StatusUnauthorized {
		t.Errorf("second exchange of one ID token after a flood of sign-in starts = %d %q; want 401", code, body)
	}
}

// Every action a person takes through their session is in the audit
// trail naming them, the issuer and the session: also the writes whose
// record was only the signed bundle (a pushed approval names its signer,
// not who pushed it; a signature by a server key names the key). A
// machine's push adds no audit entry.
func TestPersonActionsAudited(t *testing.T) {
	iss := ssotest.NewIssuer(t)
	ts := start(t, server.Config{SSO: ssoProvider(t, iss.URL, "")})
	ctx := t.Context()
	c := iss.CLIClaims(cliClient, ts.url)
	c["groups"], c["amr"] = []string{"custody-admins", "custody-approvers", "custody-deployers"}, []string{"pwd", "otp"}
	code, sess := exchange(t, ts.url, iss.Sign(t, c))
	if code != http.StatusOK {
		t.Fatalf("exchange = %d %s", code, sess)
	}
	started := lastAudit(t, ts, "session.started")
	person, err := client.New(ts.url, sess, client.WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("app"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	key, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := attest.NewStatement([]attest.Subject{{Name: "app", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateApproval, map[string]any{"environment": "prod", "artifact": digest, "approver": "alice", "time": "2026-01-01T00:00:00Z"})
	raw, _ := st.Marshal()
	approval, err := signer.SignStatement(ctx, key, raw)
	if err != nil {
		t.Fatal(err)
	}
	machineApproval, err := signer.SignStatement(ctx, key, statement(t, "machine-1", "other"))
	if err != nil {
		t.Fatal(err)
	}
	before := len(audits(t, ts))
	if _, _, err := newClient(t, ts, api.RoleBuilder).Push(ctx, machineApproval); err != nil {
		t.Fatal(err)
	}
	if after := len(audits(t, ts)); after != before {
		t.Errorf("a builder token's push wrote %d audit entries; want none", after-before)
	}

	for _, tc := range []struct {
		action string
		do     func() error
	}{
		{"evidence.pushed", func() error { _, _, err := person.Push(ctx, approval); return err }},
		{"evidence.signed", func() error { _, err := person.Sign(ctx, statement(t, "person-1", "app")); return err }},
		{"deployment.deployed", func() error {
			_, err := person.AppendDeployment(ctx, &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: digest,
				Name: "app", Actor: "alice", Time: time.Now()})
			return err
		}},
		{"incident.opened", func() error {
			_, err := person.AppendIncident(ctx, &store.IncidentRecord{Incident: storetest.IncidentID(7), Event: store.IncidentOpened,
				Actor: "alice", Time: time.Now(), Detail: "key K compromised"})
			return err
		}},
		{"token.revoked", func() error {
			code, body := call(t, ts.url, "POST", "/api/v1/tokens/revoke", sess, api.RevokeRequest{Name: "test builder"})
			if code != http.StatusOK {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		}},
		{"session.ended", func() error {
			if code, body := call(t, ts.url, "POST", "/api/v1/sessions/end", sess, nil); code != http.StatusNoContent {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		}},
	} {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.action, err)
		}
		e := lastAudit(t, ts, tc.action)
		if e.Identity != "alice@example.com" || e.Issuer != iss.URL || e.Session != started.Session || len(e.Session) != 12 {
			t.Errorf("%s names %q %q session %q; want alice, %s, session %s", tc.action, e.Identity, e.Issuer, e.Session, iss.URL, started.Session)
		}
	}
	// A person acts in whichever of their roles may do what they ask: an
	// approval is pushed as approver (not refused as a deployer's push),
	// which needs MFA; without it the refusal says so.
	c = iss.CLIClaims(cliClient, ts.url)
	c["sub"], c["email"], c["groups"], c["amr"] = "bob", "bob@example.com", []string{"custody-approvers", "custody-deployers"}, []string{"pwd"}
	if code, bob := exchange(t, ts.url, iss.Sign(t, c)); code != http.StatusOK {
		t.Fatalf("exchange = %d %s", code, bob)
	} else if a := do(t, ts, "POST", "/api/v1/evidence", bob, approval); a.status != http.StatusForbidden ||
		!strings.Contains(a.body, "approver actions require multi-factor authentication: bob@example.com") {
		t.Errorf("approval pushed without MFA = %d %s; want 403 saying MFA is needed", a.status, a.body)
	}
	pushed := lastAudit(t, ts, "evidence.pushed")
	var d struct {
		PredicateType, BundleSHA256 string
	}
	bsum := sha256.Sum256(approval)
	if err := json.Unmarshal(pushed.Detail, &d); err != nil || d.PredicateType != attest.PredicateApproval || d.BundleSHA256 != hex.EncodeToString(bsum[:]) {
		t.Errorf("evidence.pushed detail %s (%v); want the approval's type and the bundle's SHA-256", pushed.Detail, err)
	}
}

// audits lists the server's audit entries.
func audits(t *testing.T, ts *testServer) []*api.Evidence {
	t.Helper()
	evs, err := newClient(t, ts, api.RoleAuditor).Search(t.Context(), api.Query{PredicateType: api.PredicateAudit, Limit: api.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
