package policy

import (
	"os"
	"testing"
)

// FuzzParse: Parse never panics, and a policy it accepts has a stable digest.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/prod.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "groups: {a: [{name: x, keyIds: [" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + "]}]}\napprovals: [{group: a, count: 1}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		c, err := p.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
		_ = c
	})
}

// FuzzParseApproval: the approval parser never panics and what it accepts
// round-trips through NewApproval.
func FuzzParseApproval(f *testing.F) {
	f.Add([]byte(`{"environment":"prod","artifact":"sha256:abababababababababababababababababababababababababababababababab","approver":"alice","reason":"ok","time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"environment":"prod"}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseApproval(b)
		if err != nil {
			return
		}
		if _, err := NewApproval(*a); err != nil {
			t.Fatalf("accepted approval does not build: %v", err)
		}
	})
}

// FuzzParseVulnScan: never panics.
func FuzzParseVulnScan(f *testing.F) {
	f.Add([]byte(`{"scanner":{"uri":"grype","result":[{"id":"CVE-1","severity":[{"method":"nvd","score":"9.8"},{"method":"x","score":"LOW"}]}]}}`))
	f.Add([]byte(`{"scanner":{"result":[{"id":"CVE-1","severity":[{"score":1e999}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, fs, err := ParseVulnScan(PredicateVulnsV02, b)
		if err != nil {
			return
		}
		for _, v := range fs {
			if v.Severity < SeverityNone || v.Severity > SeverityCritical {
				t.Fatalf("severity %d out of range", v.Severity)
			}
		}
	})
}

// FuzzMatchPath: never panics; "**" matches every path.
func FuzzMatchPath(f *testing.F) {
	f.Add(".github/workflows/**", ".github/workflows/a.yml")
	f.Add("**/x/**", "a/x/b")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if checkPathGlob(pattern) != nil {
			return
		}
		_ = matchPath(pattern, name)
		if !matchPath("**", name) {
			t.Fatalf("** does not match %q", name)
		}
	})
}
