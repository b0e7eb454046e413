package attest

import (
	"strings"
	"testing"
)

const goodVulns = `{"scanner":{"uri":"grype","result":[{"id":"CVE-1","severity":[{"method":"nvd","score":"9.8"},{"method":"x","score":4.5}]}]},"metadata":{"scanStartedOn":"2026-01-01T00:00:00Z"}}`

func TestParseVulns(t *testing.T) {
	p, err := ParseVulns([]byte(goodVulns))
	if err != nil {
		t.Fatal(err)
	}
	if p.Scanner.URI != "grype" || len(p.Scanner.Result) != 1 || p.Scanner.Result[0].Severity[1].Score != "4.5" {
		t.Errorf("parsed %+v", p)
	}
	roundTrip(t, p, ParseVulns)
	for name, bad := range map[string]string{
		"no id":         strings.Replace(goodVulns, `"id":"CVE-1",`, ``, 1),
		"object score":  strings.Replace(goodVulns, `"9.8"`, `{}`, 1),
		"boolean score": strings.Replace(goodVulns, `"9.8"`, `true`, 1),
		"not an object": `[]`,
		"not json":      `{"scanner":`,
		"invalid utf-8": strings.Replace(goodVulns, `"grype"`, "\"gr\xffpe\"", 1),
		// A first "result" a scanner hides behind a second, empty one.
		"duplicate member": strings.Replace(goodVulns, `"result":[`, `"result":[],"result":[`, 1),
	} {
		if _, err := ParseVulns([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseVulns: never panics, every result it accepts has an id, and it
// survives a round trip.
func FuzzParseVulns(f *testing.F) {
	f.Add([]byte(goodVulns))
	f.Add([]byte(`{"scanner":{"result":[{"id":"CVE-1","severity":[{"score":1e999}]}]}}`))
	f.Add([]byte(`{"scanner":{"result":[{"id":"CVE-1","severity":[{"score":null}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseVulns(b)
		if err != nil {
			return
		}
		for _, r := range p.Scanner.Result {
			if r.ID == "" {
				t.Fatal("accepted a result without an id")
			}
		}
		roundTrip(t, p, ParseVulns)
	})
}
