package policy

import (
	"os"
	"testing"

	"github.com/custody-dev/custody/attest"
)

// FuzzParse: Parse never panics, and a policy it accepts has a stable digest.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/prod.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "groups: {a: [{name: x, keyIds: [" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + "]}]}\napprovals: [{group: a, count: 1}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte(rfPolicy))
	f.Add([]byte(rfPolicy + "latencyBudget: {fetch: 1s, verify: 200ms, evaluate: 5ms, total: 2s}\n"))
	f.Add([]byte(minimal + "redFlags: {signers: [{identity: a, issuer: b}], missing: allow, exceptions: [{kind: new-source, until: 2026-01-01, approvedBy: x}]}\n"))
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

// FuzzVulnFindings: never panics, and every finding of a scan that parses
// has a severity in range.
func FuzzVulnFindings(f *testing.F) {
	f.Add([]byte(`{"scanner":{"uri":"grype","result":[{"id":"CVE-1","severity":[{"method":"nvd","score":"9.8"},{"method":"x","score":"LOW"}]}]}}`))
	f.Add([]byte(`{"scanner":{"result":[{"id":"CVE-1","severity":[{"score":1e999}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := attest.ParseVulns(b)
		if err != nil {
			return
		}
		for _, v := range VulnFindings(p) {
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
