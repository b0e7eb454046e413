package attest

import (
	"strings"
	"testing"
)

const goodVSA = `{"verifier":{"id":"https://custody.dev/verifiers/deploy@v1"},"timeVerified":"2026-01-01T00:00:00Z",
	"resourceUri":"urn:custody:environment:prod","policy":{"uri":"urn:custody:policy:prod","digest":{"sha256":"ab"}},
	"verificationResult":"PASSED","verifiedLevels":["SLSA_BUILD_LEVEL_1"],"custody":{"environment":"prod"}}`

func TestParseVSA(t *testing.T) {
	p, err := ParseVSA([]byte(goodVSA))
	if err != nil {
		t.Fatal(err)
	}
	if p.VerificationResult != VSAPassed || p.ResourceURI != "urn:custody:environment:prod" || len(p.Custody) == 0 {
		t.Errorf("parsed %+v", p)
	}
	roundTrip(t, p, ParseVSA)
	for name, bad := range map[string]string{
		"no verifier":   strings.Replace(goodVSA, `"https://custody.dev/verifiers/deploy@v1"`, `""`, 1),
		"no time":       strings.Replace(goodVSA, `"2026-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`, 1),
		"no resource":   strings.Replace(goodVSA, `"urn:custody:environment:prod"`, `""`, 1),
		"other result":  strings.Replace(goodVSA, `"PASSED"`, `"passed"`, 1),
		"no levels":     strings.Replace(goodVSA, `["SLSA_BUILD_LEVEL_1"]`, `[]`, 1),
		"invalid utf-8": strings.Replace(goodVSA, `"prod"}`, "\"pr\xffd\"}", 1),
		// FAILED first, PASSED second: which one did the verifier sign?
		"duplicate member": strings.Replace(goodVSA, `"verificationResult":"PASSED"`, `"verificationResult":"FAILED","verificationResult":"PASSED"`, 1),
		"not an object":    `"PASSED"`,
	} {
		if _, err := ParseVSA([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseVSA: never panics; what it accepts has a known result and
// survives a round trip.
func FuzzParseVSA(f *testing.F) {
	f.Add([]byte(goodVSA))
	f.Add([]byte(`{"verificationResult":"PASSED"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseVSA(b)
		if err != nil {
			return
		}
		if p.VerificationResult != VSAPassed && p.VerificationResult != VSAFailed {
			t.Fatalf("accepted result %q", p.VerificationResult)
		}
		roundTrip(t, p, ParseVSA)
	})
}
