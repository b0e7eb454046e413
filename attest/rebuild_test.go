package attest

import (
	"encoding/json"
	"strings"
	"testing"
)

const goodRebuild = `{"original":{"buildId":"b1","bundle":{"sha256":"abababababababababababababababababababababababababababababababab"}},
	"matched":false,"subjects":[{"name":"a","status":"match","expected":{"sha256":"x"}},{"name":"b","status":"missing","expected":{"sha256":"y"}}]}`

func TestParseRebuild(t *testing.T) {
	p, err := ParseRebuild([]byte(goodRebuild))
	if err != nil {
		t.Fatal(err)
	}
	if p.Matched || p.Original.BuildID != "b1" || p.ProvenanceBundle() != strings.Repeat("ab", 32) {
		t.Errorf("parsed %+v", p)
	}
	roundTrip(t, p, ParseRebuild)
	for name, bad := range map[string]string{
		"empty":            `{}`,
		"no subjects":      `{"matched": true, "subjects": []}`,
		"says matched":     `{"matched": true, "subjects": [{"name": "a", "status": "mismatch", "expected": {"sha256": "x"}}]}`,
		"says mismatched":  `{"matched": false, "subjects": [{"name": "a", "status": "match", "expected": {"sha256": "x"}}]}`,
		"unknown status":   `{"matched": false, "subjects": [{"name": "a", "status": "weird", "expected": {"sha256": "x"}}]}`,
		"no expected":      `{"matched": false, "subjects": [{"name": "a", "status": "missing"}]}`,
		"matched string":   strings.Replace(goodRebuild, `"matched":false`, `"matched":"false"`, 1),
		"array":            `[]`,
		"uppercase bundle": strings.Replace(goodRebuild, "abab", "ABAB", 1),
		"short bundle":     strings.Replace(goodRebuild, "abab", "", 1),
		"long build id":    strings.Replace(goodRebuild, `"b1"`, `"`+strings.Repeat("b", 1025)+`"`, 1),
		// A second "matched" decides for one parser, the first for another.
		"duplicate member": strings.Replace(goodRebuild, `"matched":false`, `"matched":true,"matched":false`, 1),
		"invalid utf-8":    strings.Replace(goodRebuild, `"b1"`, "\"b\xff\"", 1),
	} {
		if _, err := ParseRebuild([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseRebuild: never panics, what it accepts is consistent and
// survives a round trip.
func FuzzParseRebuild(f *testing.F) {
	f.Add([]byte(goodRebuild))
	f.Add([]byte(`{"matched": true, "subjects": [{"name": "app", "status": "match", "expected": {"sha256": "ab"}, "got": {"sha256": "ab"}}]}`))
	f.Add([]byte(`{"matched": false, "subjects": [{"name": "app", "status": "missing", "expected": {"sha256": "ab"}}], "toolchains": {"differs": ["go"]}}`))
	f.Add([]byte(`{"matched": null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseRebuild(b)
		if err != nil {
			return
		}
		if h := p.ProvenanceBundle(); h != "" && !sha256Hex.MatchString(h) {
			t.Fatalf("accepted bundle digest %q", h)
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRebuild(again); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}
