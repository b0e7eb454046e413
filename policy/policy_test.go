package policy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/keyid"
)

var (
	now      = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	artifact = "sha256:" + strings.Repeat("ab", 32)
	builder  = Principal{KeyID: strings.Repeat("1", 64)}
	alice    = Principal{KeyID: "aaaa" + strings.Repeat("0", 60)}
	alice2   = Principal{KeyID: "aaaa" + strings.Repeat("1", 60)}
	bob      = Principal{KeyID: "bbbb" + strings.Repeat("0", 60)}
	carol    = Principal{Identity: "carol@example.com", Issuer: "https://accounts.example.com"}
	dave     = Principal{KeyID: "dddd" + strings.Repeat("0", 60)}
)

func loadProd(t testing.TB) *Policy {
	t.Helper()
	b, err := os.ReadFile("testdata/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sig(p Principal) Signature {
	return Signature{Signer: p, LogVerified: true, TimestampVerified: true, SignedAt: now.Add(-time.Hour), Bundle: strings.Repeat("c", 64)}
}

// rb is a rebuild of goodEvidence's build by p.
func rb(p Principal, matched bool) Rebuild {
	return Rebuild{Signature: sig(p), Matched: matched, BuildID: "build-1", ProvenanceBundle: strings.Repeat("c", 64)}
}

func approval(p Principal, env string) Approval {
	return Approval{Signature: sig(p), ApprovalPredicate: attest.ApprovalPredicate{Environment: env, Artifact: artifact, Approver: "x", Time: now.Add(-time.Minute)}}
}

// goodEvidence satisfies testdata/prod.yaml.
func goodEvidence() *Evidence {
	return &Evidence{
		Artifact: artifact,
		Provenance: []Provenance{{Signature: sig(builder), Facts: attest.ProvenanceFacts{
			BuilderID: "https://custody.dev/builders/local@v1", SourceURI: "git+https://github.com/org/app.git",
			SourceRef: "refs/tags/v1.2.0", FinishedOn: now.Add(-2 * time.Hour), BuildID: "build-1",
		}}},
		Attestations: []Attestation{{Signature: sig(builder), PredicateType: attest.PredicateCycloneDX, Predicate: json.RawMessage(`{}`)}},
		VulnScans: []VulnScan{{Signature: sig(builder), PredicateType: attest.PredicateVulnsV02, Findings: []Vulnerability{
			{ID: "CVE-2026-0001", Severity: SeverityMedium}, {ID: "CVE-2026-1234", Severity: SeverityCritical},
		}}},
		Approvals: []Approval{approval(alice, "prod"), approval(bob, "prod"), approval(dave, "prod")},
	}
}

func TestEvaluate(t *testing.T) {
	p := loadProd(t)
	tests := []struct {
		name    string
		mutate  func(*Evidence)
		at      time.Time
		failReq []string // requirements expected to fail, in order
		msg     string   // substring of the first failure's message
	}{
		{name: "allowed", mutate: func(*Evidence) {}},
		{name: "untrusted builder", mutate: func(e *Evidence) { e.Provenance[0].Facts.BuilderID = "https://ci.example/untrusted" },
			failReq: []string{ReqBuilder}, msg: "built by https://ci.example/untrusted, trusted builders are https://custody.dev/builders/local@v1"},
		{name: "no provenance", mutate: func(e *Evidence) { e.Provenance = nil }, failReq: []string{ReqProvenance}},
		{name: "wrong repo", mutate: func(e *Evidence) { e.Provenance[0].Facts.SourceURI = "git+https://github.com/evil/app" }, failReq: []string{ReqSource}},
		{name: "branch not tag", mutate: func(e *Evidence) { e.Provenance[0].Facts.SourceRef = "refs/heads/main" }, failReq: []string{ReqSource}, msg: "allowed refs are refs/tags/v*"},
		{name: "dirty", mutate: func(e *Evidence) { e.Provenance[0].Facts.Dirty = true }, failReq: []string{ReqSource}},
		{name: "untrusted signer", mutate: func(e *Evidence) { e.Provenance[0].Signer = Principal{KeyID: strings.Repeat("9", 64)} }, failReq: []string{ReqSigner}},
		{name: "no log", mutate: func(e *Evidence) { e.Provenance[0].LogVerified = false }, failReq: []string{ReqLog}},
		{name: "no timestamp", mutate: func(e *Evidence) { e.Provenance[0].TimestampVerified = false }, failReq: []string{ReqTimestamp}},
		{name: "too old", mutate: func(e *Evidence) { e.Provenance[0].Facts.FinishedOn = now.Add(-31 * 24 * time.Hour) }, failReq: []string{ReqMaxAge}},
		{name: "no build time falls back to signing time", mutate: func(e *Evidence) { e.Provenance[0].Facts.FinishedOn = time.Time{} }},
		{name: "no time at all", mutate: func(e *Evidence) {
			e.Provenance[0].Facts.FinishedOn = time.Time{}
			e.Provenance[0].SignedAt = time.Time{}
		}, failReq: []string{ReqTimestamp, ReqMaxAge}},
		{name: "second provenance good", mutate: func(e *Evidence) {
			bad := e.Provenance[0]
			bad.Facts.BuilderID = "https://ci.example/untrusted"
			e.Provenance = append([]Provenance{bad}, e.Provenance...)
		}},
		{name: "no sbom", mutate: func(e *Evidence) { e.Attestations = nil }, failReq: []string{"evidence:sbom"}},
		{name: "sbom unlogged", mutate: func(e *Evidence) { e.Attestations[0].LogVerified = false }, failReq: []string{"log (evidence:sbom)"}},
		{name: "no scan", mutate: func(e *Evidence) { e.VulnScans = nil }, failReq: []string{"evidence:vuln-scan", ReqVulnerabilities}},
		{name: "critical vuln", mutate: func(e *Evidence) {
			e.VulnScans[0].Findings = append(e.VulnScans[0].Findings, Vulnerability{ID: "CVE-2026-9", Severity: SeverityCritical})
		}, failReq: []string{ReqVulnerabilities}, msg: "CVE-2026-9 (critical)"},
		{name: "exception expired", at: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), mutate: func(e *Evidence) {
			e.Provenance[0].Facts.FinishedOn = time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
		}, failReq: []string{ReqVulnerabilities}, msg: "exception expired 2027-01-31"},
		{name: "exception last day", at: time.Date(2027, 1, 31, 23, 0, 0, 0, time.UTC), mutate: func(e *Evidence) {
			e.Provenance[0].Facts.FinishedOn = time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
		}},
		{name: "rebuild mismatch", mutate: func(e *Evidence) { e.Rebuilds = []Rebuild{{Signature: sig(dave), Matched: false}} }, failReq: []string{ReqRebuild}},
		{name: "missing security approval", mutate: func(e *Evidence) { e.Approvals = e.Approvals[:2] },
			failReq: []string{"approval:security"}, msg: "needs 1 more approval(s) from group security; approved so far: alice (release-managers), bob (release-managers)"},
		{name: "alice twice with two keys counts once", mutate: func(e *Evidence) {
			e.Approvals = []Approval{approval(alice, "prod"), approval(alice2, "prod"), approval(dave, "prod")}
		}, failReq: []string{"approval:release-managers"}, msg: "needs 1 more approval(s) from group release-managers; approved so far: alice (release-managers), dave (security)"},
		{name: "keyless member", mutate: func(e *Evidence) { e.Approvals[1] = approval(carol, "prod") }},
		{name: "approval for staging", mutate: func(e *Evidence) { e.Approvals[2] = approval(dave, "staging") },
			failReq: []string{"approval:security"}, msg: "is for environment staging"},
		{name: "approval for another artifact", mutate: func(e *Evidence) {
			e.Approvals[2].Artifact = "sha256:" + strings.Repeat("0", 64)
		}, failReq: []string{"approval:security"}, msg: "not this artifact"},
		{name: "builder cannot approve", mutate: func(e *Evidence) { e.Provenance[0].Signer = bob },
			failReq: []string{ReqSigner, "approval:release-managers"}},
		{name: "author cannot approve", mutate: func(e *Evidence) { e.Authors = []string{"Bob"} },
			failReq: []string{"approval:release-managers"}, msg: "bob's approval does not count: bob built or authored this artifact (separation of duties)"},
		{name: "non-member approval", mutate: func(e *Evidence) { e.Approvals[0] = approval(builder, "prod") },
			failReq: []string{"approval:release-managers"}, msg: "counts for no group"},
		{name: "rego deny", mutate: func(e *Evidence) {
			e.Attestations = append(e.Attestations, Attestation{Signature: sig(builder), PredicateType: attest.PredicateTestResult, Predicate: json.RawMessage(`{"result":"FAILED"}`)})
		}, failReq: []string{ReqRego}, msg: "test results report FAILED"},
		{name: "bad artifact", mutate: func(e *Evidence) { e.Artifact = "sha256:XYZ" }, failReq: []string{ReqArtifact}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := goodEvidence()
			tt.mutate(ev)
			at := now
			if !tt.at.IsZero() {
				at = tt.at
			}
			d, err := p.Evaluate(context.Background(), ev, at)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range d.Failures {
				got = append(got, f.Requirement)
				if f.Message == "" || f.Fix == "" {
					t.Errorf("failure %+v lacks a message or fix", f)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.failReq, "|") {
				t.Fatalf("failures %q, want %q: %+v", got, tt.failReq, d.Failures)
			}
			if d.Allowed != (len(tt.failReq) == 0) {
				t.Errorf("Allowed = %v", d.Allowed)
			}
			if tt.msg != "" && !strings.Contains(d.Failures[0].Message, tt.msg) {
				t.Errorf("message %q does not contain %q", d.Failures[0].Message, tt.msg)
			}
			if d.PolicyDigest != p.Digest() || d.Environment != "prod" {
				t.Errorf("decision names %s %s", d.Environment, d.PolicyDigest)
			}
		})
	}
}

// rebuilders: k counts distinct signers of matching rebuilds, never the
// provenance's signer.
func TestEvaluateRebuilders(t *testing.T) {
	p := loadProd(t)
	p.Rebuilders = 2
	for _, tt := range []struct {
		name     string
		rebuilds []Rebuild
		allowed  bool
		msg      string
	}{
		{"none", nil, false, "agreeing so far: none"},
		{"one", []Rebuild{rb(dave, true)}, false, "needs 2 independent rebuilder(s)"},
		{"one twice", []Rebuild{rb(dave, true), rb(dave, true)}, false, "needs 2"},
		{"builder does not count", []Rebuild{rb(dave, true), rb(builder, true)}, false, "needs 2"},
		{"two", []Rebuild{rb(dave, true), rb(alice, true)}, true, ""},
		{"two but one differs", []Rebuild{rb(dave, true), rb(alice, true), rb(bob, false)}, false, "did not reproduce"},
		{"build ID only binds", []Rebuild{rb(dave, true), {Signature: sig(alice), Matched: true, BuildID: "build-1"}}, true, ""},
		{"another build does not count", []Rebuild{rb(dave, true), {Signature: sig(alice), Matched: true, BuildID: "build-2", ProvenanceBundle: strings.Repeat("c", 64)}}, false, "replayed build build-2 (provenance bundle cccccccccccc), not a build of this artifact"},
		{"another provenance bundle does not count", []Rebuild{rb(dave, true), {Signature: sig(alice), Matched: true, BuildID: "build-1", ProvenanceBundle: strings.Repeat("e", 64)}}, false, "not a build of this artifact's verified provenance"},
		{"a rebuild naming no build does not count", []Rebuild{rb(dave, true), {Signature: sig(alice), Matched: true}}, false, "replayed a build it does not name"},
		{"a mismatch of another build still denies", []Rebuild{rb(dave, true), rb(alice, true), {Signature: sig(bob), Matched: false, BuildID: "build-9"}}, false, "of build build-9 did not reproduce"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := goodEvidence()
			ev.Rebuilds = tt.rebuilds
			d, err := p.Evaluate(context.Background(), ev, now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, failures %+v", d.Allowed, d.Failures)
			}
			if tt.msg != "" {
				found := false
				for _, f := range d.Failures {
					if f.Requirement == ReqRebuild && strings.Contains(f.Message, tt.msg) {
						found = true
					}
				}
				if !found {
					t.Errorf("no rebuild failure containing %q in %+v", tt.msg, d.Failures)
				}
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	p := loadProd(t)
	if _, err := p.Evaluate(context.Background(), nil, now); !errors.Is(err, ErrNoEvidence) {
		t.Errorf("nil evidence: %v", err)
	}
	if _, err := (&Policy{}).Evaluate(context.Background(), goodEvidence(), now); err == nil {
		t.Error("hand-built policy evaluated")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Evaluate(ctx, goodEvidence(), now); err == nil {
		t.Error("cancelled context evaluated")
	}
}

func TestRegoFailsClosed(t *testing.T) {
	p := mustParse(t, minimal+"rego: |\n  package custody\n  deny contains msg if { msg := sprintf(\"%d\", [input.artifact + 1]) }\n")
	d, err := p.Evaluate(context.Background(), goodEvidence(), now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.Failures[len(d.Failures)-1].Requirement != ReqRego {
		t.Fatalf("a rego rule that errors did not deny: %+v", d)
	}
}

const minimal = `apiVersion: custody.dev/policy/v1
environment: dev
trustedBuilders: [https://custody.dev/builders/local]
signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]
`

func mustParse(t testing.TB, s string) *Policy {
	t.Helper()
	p, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, doc, err string
	}{
		{"minimal", minimal, ""},
		{"unknown field", minimal + "maxage: 3h\n", "field maxage not found"},
		{"wrong version", strings.Replace(minimal, "v1\n", "v2\n", 1), "apiVersion"},
		{"no builders", strings.Replace(minimal, "trustedBuilders: [https://custody.dev/builders/local]", "trustedBuilders: []", 1), "trustedBuilders is empty"},
		{"no signers", strings.Replace(minimal, "signers: [{keyId: 1111111111111111111111111111111111111111111111111111111111111111}]", "", 1), "signers is empty"},
		{"bad key id", strings.Replace(minimal, "keyId: 1111", "keyId: X111", 1), "neither 64 hex digits nor the base64"},
		{"identity without issuer", minimal + "# x\n", ""},
		{"bad evidence", minimal + "requiredEvidence: [sbom, magic]\n", `"magic" is neither`},
		{"evidence URI", minimal + "requiredEvidence: [https://example.com/p/v1]\n", ""},
		{"bad age", minimal + "maxAge: soon\n", "maxAge"},
		{"days", minimal + "maxAge: 30d\n", ""},
		{"bad severity", minimal + "maxSeverity: dire\n", "unknown severity"},
		{"bad date", minimal + "maxSeverity: low\nexceptions: [{id: CVE-1, until: 31/01/2027, approvedBy: sec}]\n", "not a date"},
		{"unknown group", minimal + "approvals: [{group: sec, count: 1}]\n", "not in groups"},
		{"too many", minimal + "groups: {sec: [{name: a, keyIds: [" + strings.Repeat("a", 64) + "]}]}\napprovals: [{group: sec, count: 2}]\n", "only 1 member"},
		{"shared key", minimal + "groups: {sec: [{name: a, keyIds: [" + strings.Repeat("a", 64) + "]}, {name: b, keyIds: [" + strings.Repeat("a", 64) + "]}]}\n", "belongs to both"},
		{"zero count", minimal + "groups: {sec: [{name: a, keyIds: [" + strings.Repeat("a", 64) + "]}]}\napprovals: [{group: sec, count: 0}]\n", "at least 1"},
		{"bad glob", minimal + "sources: [{repo: github.com/o/r, refs: ['refs/[']}]\n", "not a valid glob"},
		{"two documents", minimal + "---\n" + minimal, "more than one"},
		{"empty", "", "empty"},
		{"rego syntax", minimal + "rego: 'package custody\n\n  deny contains'\n", "rego"},
		{"rego package", minimal + "rego: |\n  package other\n  deny contains 1 if { true }\n", "want package custody"},
		{"rego network", minimal + "rego: |\n  package custody\n  deny contains x if { x := http.send({\"method\": \"get\", \"url\": \"http://x\"}) }\n", "http.send"},
		{"too big", minimal + "# " + strings.Repeat("x", MaxPolicyBytes) + "\n", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.doc))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(p.Digest(), "sha256:") {
					t.Errorf("digest %q", p.Digest())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want one containing %q wrapping ErrMalformed", err, tt.err)
			}
		})
	}
}

func TestDigestIgnoresFormatting(t *testing.T) {
	a := mustParse(t, minimal)
	b := mustParse(t, "# comment\nsigners:\n  - keyId: \"1111111111111111111111111111111111111111111111111111111111111111\"\nenvironment: dev\napiVersion: custody.dev/policy/v1\ntrustedBuilders:\n  - https://custody.dev/builders/local\n")
	c := mustParse(t, minimal+"maxAge: 1h\n")
	if a.Digest() != b.Digest() {
		t.Errorf("same policy, different digests %s %s", a.Digest(), b.Digest())
	}
	if a.Digest() == c.Digest() {
		t.Error("different policies, same digest")
	}
}

func TestDiff(t *testing.T) {
	old := mustParse(t, minimal)
	strict := mustParse(t, strings.Replace(minimal, "builders/local]", "builders/other]", 1))
	good := goodEvidence()
	bad := goodEvidence()
	bad.Artifact = "sha256:" + strings.Repeat("cd", 32)
	bad.Provenance[0].Facts.BuilderID = "https://custody.dev/builders/other@v1"
	got := Diff(old, strict, []*Evidence{good, bad}, now)
	if len(got) != 2 || got[0].Artifact != good.Artifact || got[0].Change != NewlyDenied || got[1].Change != NewlyAllowed {
		t.Fatalf("diff = %+v", got)
	}
	if got := Diff(old, old, []*Evidence{good, bad}, now); len(got) != 0 {
		t.Fatalf("diff of a policy with itself = %+v", got)
	}
}

func TestVSA(t *testing.T) {
	p := loadProd(t)
	for _, allowed := range []bool{true, false} {
		ev := goodEvidence()
		if !allowed {
			ev.Approvals = nil
		}
		d, err := p.Evaluate(context.Background(), ev, now)
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.VSA("https://custody.dev/verifier/v1")
		if err != nil {
			t.Fatal(err)
		}
		st, err := attest.ParseStatement(b)
		if err != nil {
			t.Fatal(err)
		}
		pred, err := attest.ParseVSA(st.Predicate)
		if err != nil {
			t.Fatal(err)
		}
		want := attest.VSAFailed
		if allowed {
			want = attest.VSAPassed
		}
		if st.PredicateType != attest.PredicateVSA || pred.VerificationResult != want || pred.Policy.Digest["sha256"] != strings.TrimPrefix(p.Digest(), "sha256:") ||
			pred.ResourceURI != "urn:custody:environment:prod" || len(pred.InputAttestations) != 1 || st.Subject[0].Digest["sha256"] != strings.TrimPrefix(artifact, "sha256:") {
			t.Errorf("VSA %s", b)
		}
	}
}

func TestVulnFindings(t *testing.T) {
	p, err := attest.ParseVulns([]byte(`{"scanner":{"uri":"u","result":[
		{"id":"A","severity":[{"method":"nvd","score":"3.1"}]},
		{"id":"B","severity":[{"method":"nvd","score":"7.0"},{"method":"vendor","score":"CRITICAL"}]},
		{"id":"C","severity":[]},
		{"id":"D","severity":[{"method":"x","score":"banana"}]},
		{"id":"E","severity":[{"method":"x","score":0}]},
		{"id":"F","severity":[{"method":"x","score":1e999}]},
		{"id":"G","severity":[{"method":"x","score":4.5}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	fs := VulnFindings(p)
	want := []Severity{SeverityLow, SeverityCritical, SeverityCritical, SeverityCritical, SeverityNone, SeverityCritical, SeverityMedium}
	for i, f := range fs {
		if f.Severity != want[i] {
			t.Errorf("%s: %s, want %s", f.ID, f.Severity, want[i])
		}
	}
}

// A policy may name a key by either form of its ID; it holds the printed
// (hex) form, so the base64 and the hex of one key are the same signer.
func TestKeyIDEitherForm(t *testing.T) {
	hexID := strings.Repeat("1", 64)
	id, err := keyid.Parse(hexID)
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(minimal, "keyId: "+hexID, "keyId: '"+id.Base64()+"'", 1)
	if doc == minimal {
		t.Fatal("minimal policy has no keyId to replace")
	}
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.Signers[0].KeyID != hexID {
		t.Errorf("signer keyId = %q, want %q", p.Signers[0].KeyID, hexID)
	}
	shared := minimal + "groups: {sec: [{name: a, keyIds: [" + hexID + "]}, {name: b, keyIds: ['" + id.Base64() + "']}]}\n"
	if _, err := Parse([]byte(shared)); err == nil || !strings.Contains(err.Error(), "belongs to both") {
		t.Errorf("one key as hex and base64 in two members: err = %v, want belongs to both", err)
	}
}
