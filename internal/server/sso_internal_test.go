package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/sso"
)

// The return URL after sign-in is a path of this server's dashboard,
// whatever the query said.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/ui/", "/ui/incidents?x=1", "https://evil.example/", "//evil.example", "/ui/\\evil", "/\\evil",
		"/ui/../../x", "/ui/%2e%2e/x", "javascript:alert(1)", "/ui/sso/callback?code=x", "\t//evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ret string) {
		got := safeReturn(ret)
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(got, "/ui/") || strings.HasPrefix(got, "//") ||
			strings.ContainsAny(got, "\\\r\n\t") {
			t.Fatalf("safeReturn(%q) = %q: leaves the dashboard", ret, got)
		}
		if got != "/ui/" && got != ret {
			t.Fatalf("safeReturn(%q) = %q: rewritten rather than refused", ret, got)
		}
	})
}

// A person acts in a role that needs no MFA when they have one that may
// do the action; an MFA role only with MFA.
func TestPickRole(t *testing.T) {
	p := &sso.Identity{Roles: []api.Role{api.RoleApprover, api.RoleDeployer}}
	if r, ok := pickRole(p, []api.Role{api.RoleBuilder, api.RoleAdmin, api.RoleApprover, api.RoleDeployer}); !ok || r != api.RoleDeployer {
		t.Errorf("push as approver+deployer without MFA = %s %v; want deployer", r, ok)
	}
	if r, ok := pickRole(p, []api.Role{api.RoleApprover}); ok || r != api.RoleApprover {
		t.Errorf("approver action without MFA = %s %v; want refused naming approver", r, ok)
	}
	p.MFA = true
	if r, ok := pickRole(p, []api.Role{api.RoleApprover}); !ok || r != api.RoleApprover {
		t.Errorf("approver action with MFA = %s %v", r, ok)
	}
	if r, ok := pickRole(p, []api.Role{api.RoleAdmin}); ok || r != "" {
		t.Errorf("admin action by a non-admin = %s %v; want refused, no MFA role named", r, ok)
	}
}
