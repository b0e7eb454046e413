//go:build !custody_norego

package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/custody-dev/custody/attest"
	"github.com/open-policy-agent/opa/v1/ast"
)

// benchEvidence is the evidence of bench/policy: 50 findings, three
// approvals, an SBOM and a test-result predicate.
func benchEvidence() *Evidence {
	var findings []Vulnerability
	for i := 0; i < 50; i++ {
		findings = append(findings, Vulnerability{ID: "CVE-2026-" + strings.Repeat("1", i%4+1), Severity: SeverityMedium})
	}
	ev := goodEvidence()
	ev.Provenance[0].Facts = attest.ProvenanceFacts{
		BuilderID: "https://custody.dev/builders/local@v1", SourceURI: "git+https://github.com/org/app", SourceRef: "refs/tags/v1.0.0",
		SourceCommit: strings.Repeat("0", 40), FinishedOn: now.Add(-2 * 60 * 60 * 1e9), BuildID: "b1",
	}
	ev.Attestations = []Attestation{
		{Signature: sig(builder), PredicateType: attest.PredicateCycloneDX, Predicate: json.RawMessage(`{"bomFormat":"CycloneDX","components":[{"name":"x"},{"name":"y"}]}`)},
		{Signature: sig(builder), PredicateType: attest.PredicateTestResult, Predicate: json.RawMessage(`{"result":"PASSED","passedTests":["a","b"]}`)},
	}
	ev.VulnScans = []VulnScan{{Signature: sig(builder), PredicateType: attest.PredicateVulnsV02, Scanner: "grype", Findings: findings}}
	return ev
}

// mustRegoInputJSON is regoInputJSON, failing the test on an error.
func mustRegoInputJSON(t testing.TB, ev *Evidence) []byte {
	t.Helper()
	b, err := regoInputJSON(ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nest(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// regoValueSeeds are documents where a converter is likely to differ from
// OPA's: valid and invalid, deep, big numbers, escapes, duplicate keys.
var regoValueSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `null`, `true`, `false`, ` [ ] `, "\t{ }\r\n",
	`{"a":{},"b":[],"c":[{}],"d":[[]]}`,
	`[1,-1,0.5,-0.0,1e3,1E+3,1e-3,100,1000000,-1000000,9007199254740993]`,
	`123456789012345678901234567890123456789012345678901234567890`,
	`-123456789012345678901234567890.123456789012345678901234567890e-5`,
	`1e400`, `1e-400`, `1e99999`, `1e100001`, `1e-100001`, `1e999999999999999999999`, `0.0e100001`,
	`[1e100000, 2]`, `{"n": 5e1000000}`,
	`"plain"`, `"caf\u00e9"`, `"café"`, `"\u00e9"`, `"\"\\\/\b\f\n\r\t"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\u0000"`, `"\uFFFF"`, `"a\u0022b"`,
	"\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"ok\xe2\x82\"", "{\"\xff\":1}",
	`{"a":1,"a":2}`, `{"a":1,"b":2,"a":3}`, `{"a":{"x":1},"a":[2]}`, `{"a\u0062":1,"ab":2}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":"again","k16":"again","k17":"again"}`,
	`{"set":[1,1,1],"o":{"b":1,"a":2}}`,
	nest("[", "]", 200), strings.Repeat(`{"a":[`, 100) + "1" + strings.Repeat("]}", 100),
	// invalid
	``, ` `, `{`, `[`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `+1`, `1e`, `1e+`, `tru`, `nul`, `True`,
	`"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\tb\"", "\"a\nb\"", `{} x`, `1 2`, `[1]]`, `"a" "b"`, `{}{}`, `nulll`, "[1\x00]",
}

func opaValue(b []byte) (ast.Value, error) { return ast.ValueFromReader(bytes.NewReader(b)) }

// checkRegoValue compares regoValue(b) with ast.ValueFromReader(b): the
// same value, or both an error, for every document json.Valid accepts; an
// error from regoValue for every other input. ValueFromReader reads only
// the first value of a stream, so it accepts a valid document followed by
// junk; then its value must be regoValue's of that first document.
func checkRegoValue(t *testing.T, b []byte) {
	t.Helper()
	got, gotErr := regoValue(b)
	want, wantErr := opaValue(b)
	if !json.Valid(b) {
		if gotErr == nil {
			t.Fatalf("regoValue(%.80q) accepted invalid JSON: %v", b, got)
		}
		if wantErr == nil {
			var first json.RawMessage
			if err := json.NewDecoder(bytes.NewReader(b)).Decode(&first); err != nil {
				t.Fatalf("OPA accepted %.80q, json.Decoder did not: %v", b, err)
			}
			v, err := regoValue(first)
			if err != nil || v.Compare(want) != 0 {
				t.Fatalf("first document %.80q of %.80q: regoValue %v, %v; OPA %v", first, b, v, err, want)
			}
		}
		return
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%.80q: regoValue error %v, OPA error %v", b, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	if got.Compare(want) != 0 || got.Hash() != want.Hash() {
		t.Fatalf("%.200q:\n regoValue %.200v\n OPA       %.200v", b, got, want)
	}
	if gs, ws := got.String(), want.String(); len(gs) != len(ws) {
		t.Fatalf("%.80q: String() lengths differ: %d, %d", b, len(gs), len(ws))
	}
}

// regoDeepDocs are at and just past the depth limit (encoding/json's).
// They are not fuzz seeds: the fuzzer spends its time minimizing them.
var regoDeepDocs = []string{
	nest("[", "]", regoMaxDepth), nest("[", "]", regoMaxDepth+1),
	strings.Repeat(`{"a":`, regoMaxDepth) + "1" + strings.Repeat("}", regoMaxDepth),
	strings.Repeat(`{"a":`, regoMaxDepth+1) + "1" + strings.Repeat("}", regoMaxDepth+1),
	strings.Repeat("[", 10*regoMaxDepth),
}

func TestRegoValue(t *testing.T) {
	for _, s := range regoValueSeeds {
		checkRegoValue(t, []byte(s))
	}
	for i, s := range regoDeepDocs {
		checkRegoValue(t, []byte(s))
		if _, err := regoValue([]byte(s)); (err == nil) != (i%2 == 0 && i < 4) {
			t.Errorf("depth doc %d: err %v", i, err)
		}
	}
	for _, ev := range []*Evidence{goodEvidence(), benchEvidence(), {}} {
		checkRegoValue(t, mustRegoInputJSON(t, ev))
	}
}

// TestRegoValueDuplicateKeys: the last of repeated keys wins and the
// object holds each key once, as in OPA (whose decoder goes through a Go
// map).
func TestRegoValueDuplicateKeys(t *testing.T) {
	for _, s := range []string{`{"a":1,"b":2,"a":3}`, `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"a":1,"k3":"x","a":3}`} {
		v, err := regoValue([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		o := v.(ast.Object)
		want, _ := opaValue([]byte(s))
		if o.Len() != want.(ast.Object).Len() {
			t.Errorf("%s: %d keys, OPA %d", s, o.Len(), want.(ast.Object).Len())
		}
		if got := o.Get(ast.StringTerm("a")); got == nil || got.Value.Compare(ast.Number("3")) != 0 {
			t.Errorf("%s: a = %v, want 3", s, got)
		}
	}
}

// TestRegoInputMatchesOPA: the evidence the custom rules see is the value
// OPA itself would make of its JSON.
func TestRegoInputMatchesOPA(t *testing.T) {
	for _, ev := range []*Evidence{goodEvidence(), benchEvidence(), {}} {
		got, err := (&Policy{}).regoInput(ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := opaValue(mustRegoInputJSON(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("regoInput differs from OPA's:\n%v\n%v", got, want)
		}
	}
}

// FuzzRegoValue: regoValue agrees with ast.ValueFromReader on every valid
// JSON document and rejects every invalid one.
func FuzzRegoValue(f *testing.F) {
	for _, s := range regoValueSeeds {
		f.Add([]byte(s))
	}
	f.Add(mustRegoInputJSON(f, goodEvidence()))
	f.Add(mustRegoInputJSON(f, benchEvidence()))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRegoValue(t, b)
	})
}

func BenchmarkRegoInput(b *testing.B) {
	ev := benchEvidence()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (&Policy{}).regoInput(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegoInputOPA(b *testing.B) {
	ev := benchEvidence()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := opaValue(mustRegoInputJSON(b, ev)); err != nil {
			b.Fatal(err)
		}
	}
}
