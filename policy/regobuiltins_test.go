//go:build !custody_norego

package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestRegoForbiddenBuiltins: a policy calling a builtin off the allow-list,
// directly, nested in an argument, in a comprehension, in its own function
// or one OPA added after the list was written, is refused when loaded with
// one line naming the builtin.
func TestRegoForbiddenBuiltins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ builtin, body string }{
		{"http.send", `deny contains "x" if { http.send({"method": "get", "url": "http://x"}) }`},
		{"net.lookup_ip_addr", `deny contains "x" if { count(net.lookup_ip_addr("example.com")) > 0 }`},
		{"net.cidr_contains", `deny contains "x" if net.cidr_contains("10.0.0.0/8", "10.1.1.1")`},
		{"opa.runtime", `deny contains msg if { msg := sprintf("%v", [opa.runtime().env]) }`},
		{"rand.intn", `deny contains "x" if { [n | n := rand.intn("k", 10)][0] > 5 }`},
		{"uuid.rfc4122", `deny contains "x" if { f(1) }
f(x) if uuid.rfc4122("k") != ""`},
		{"trace", `deny contains "x" if { trace("hello"); false }`},
		{"io.jwt.decode_verify", `deny contains "x" if { io.jwt.decode_verify("a.b.c", {"cert": "x"}) }`},
		{"io.jwt.decode", `deny contains "x" if { io.jwt.decode("a.b.c") }`},
		{"json.match_schema", `deny contains "x" if { json.match_schema({}, {"$ref": "http://x"}) }`},
		{"crypto.x509.parse_certificates", `deny contains "x" if { crypto.x509.parse_certificates("") }`},
		{"rego.parse_module", `deny contains "x" if { rego.parse_module("a", "package a") }`},
		{"providers.aws.sign_req", `deny contains "x" if { providers.aws.sign_req({}, {}, 0) }`},
	} {
		t.Run(tc.builtin, func(t *testing.T) {
			_, err := PrepareRules(context.Background(), "package custody\n"+tc.body+"\n")
			if err == nil {
				t.Fatal("compiled")
			}
			msg := err.Error()
			if !strings.Contains(msg, "builtin "+tc.builtin+" is not allowed") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tc.builtin)
			}
			doc := minimal + "rego: |\n  package custody\n  " + strings.ReplaceAll(tc.body, "\n", "\n  ") + "\n"
			if _, err := Parse([]byte(doc)); err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.builtin) {
				t.Errorf("Parse: %v, want ErrMalformed naming %s", err, tc.builtin)
			}
		})
	}
}

// TestRegoAllowedBuiltins: every allowed name is a builtin of this OPA (a
// typo would silently drop it from the capabilities), none is marked
// nondeterministic except time.now_ns (pinned by Eval), and a policy using
// one of each kind still compiles and decides.
func TestRegoAllowedBuiltins(t *testing.T) {
	t.Parallel()
	for name := range regoAllowed {
		b, ok := ast.BuiltinMap[name]
		if !ok {
			t.Errorf("%s is allowed but is no builtin of this OPA", name)
			continue
		}
		if b.Nondeterministic && name != "time.now_ns" {
			t.Errorf("%s is nondeterministic", name)
		}
	}
	module := `package custody
deny contains msg if {
	some a in input.attestations
	startswith(lower(a.predicateType), "https://")
	regex.match("^v[0-9]+$", a.version)
	glob.match("refs/heads/*", ["/"], a.ref)
	semver.compare(trim_prefix(a.semver, "v"), "1.2.0") < 0
	time.parse_rfc3339_ns(a.time) < time.now_ns() - time.parse_duration_ns("24h")
	units.parse_bytes("1KiB") == 1024
	crypto.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	base64.decode(base64.encode(a.ref)) == a.ref
	json.unmarshal(json.marshal({"a": [1]})).a == [1]
	yaml.unmarshal("k: v").k == "v"
	count(array.concat([1], [2]) ) == 2
	count({1, 2} & {2, 3}) == 1
	object.get(a, "missing", "d") == "d"
	msg := sprintf("old %s %s", [a.semver, concat(",", split(a.ref, "/"))])
}
`
	q, err := PrepareRules(context.Background(), module)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"attestations": []any{map[string]any{
		"predicateType": "HTTPS://x", "version": "v1", "ref": "refs/heads/main",
		"semver": "v1.1.0", "time": "2026-01-01T00:00:00Z",
	}}}
	got, err := q.Eval(context.Background(), in, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(got) != 1 || got[0] != "old v1.1.0 refs,heads,main" {
		t.Fatalf("Eval = %q, %v", got, err)
	}
	// time.now_ns is the decision's time: a day earlier, nothing is old.
	got, err = q.Eval(context.Background(), in, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	if err != nil || len(got) != 0 {
		t.Fatalf("Eval at the attestation's time = %q, %v", got, err)
	}
}

// TestRegoTestdataPolicies: the Rego of every policy in the repository's
// test data and README still compiles under the allow-list.
func TestRegoTestdataPolicies(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../internal/cli/testdata/script/*.txtar")
	files = append(files, "testdata/prod.yaml", "../README.md")
	more, _ := filepath.Glob("../docs/*.md")
	files = append(files, more...)
	block := regexp.MustCompile(`(?m)^rego: \|\n((?:  .*\n)+)`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(b, -1) {
			src := regexp.MustCompile(`(?m)^  `).ReplaceAllString(string(m[1]), "")
			if _, err := PrepareRules(context.Background(), src); err != nil {
				t.Errorf("%s: %v\n%s", f, err, src)
			}
			n++
		}
	}
	if n < 4 {
		t.Errorf("found %d policies with rego, want at least 4", n)
	}
}
