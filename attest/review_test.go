package attest

import (
	"strings"
	"testing"
)

const (
	testBase = "0000000000000000000000000000000000000000"
	testHead = "1111111111111111111111111111111111111111"
)

var goodReview = `{"repo":"git+https://github.com/org/app","range":{"base":"` + testBase + `","baseRef":"refs/tags/v1","head":"` + testHead + `"},
	"commits":[{"commit":"` + testHead + `","author":{"name":"A","email":"a@x"},"files":[]}],"reviewers":["bob"],"reviewedAt":"2026-01-01T00:00:00Z","extra":1}`

func TestParseReview(t *testing.T) {
	p, err := ParseReview([]byte(goodReview))
	if err != nil {
		t.Fatal(err)
	}
	if p.Commits[0].Files == nil || p.Range.BaseRef != "refs/tags/v1" || p.Commits[0].Parents != nil {
		t.Errorf("parsed %+v", p)
	}
	root := strings.Replace(strings.Replace(goodReview, `"base":"`+testBase+`"`, `"base":"","root":true`, 1), `"files":[]`, `"parents":[],"files":[]`, 1)
	if p, err := ParseReview([]byte(root)); err != nil || !p.Range.Root || p.Commits[0].Parents == nil {
		t.Errorf("root range: %+v, %v", p, err)
	}
	for name, bad := range map[string]string{
		"no reviewer":   strings.Replace(goodReview, `["bob"]`, `[]`, 1),
		"empty":         strings.Replace(goodReview, `["bob"]`, `[" "]`, 1),
		"short commit":  strings.Replace(goodReview, `"commit":"`+testHead, `"commit":"abc`, 1),
		"no head":       strings.Replace(goodReview, `"head":"`+testHead+`"`, `"head":""`, 1),
		"no time":       strings.Replace(goodReview, `"2026-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`, 1),
		"no repo":       strings.Replace(goodReview, `"git+https://github.com/org/app"`, `""`, 1),
		"root and base": strings.Replace(goodReview, `"baseRef"`, `"root":true,"baseRef"`, 1),
		"bad parent":    strings.Replace(goodReview, `"files":[]`, `"parents":["abc"],"files":[]`, 1),
		// A second "reviewers" would be read by another parser (or this
		// one) as the only one.
		"duplicate member": strings.Replace(goodReview, `"reviewers":["bob"]`, `"reviewers":["mallory"],"reviewers":["bob"]`, 1),
		"invalid utf-8":    strings.Replace(goodReview, `"bob"`, "\"b\xffb\"", 1),
		"not an object":    `["bob"]`,
		"not json":         "{",
		"oversized":        `{"repo":"` + strings.Repeat("a", MaxStatementBytes) + `"}`,
	} {
		if _, err := ParseReview([]byte(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzParseReview: never panics, and what it accepts has full commits and
// a reviewer, and validates again after a round trip.
func FuzzParseReview(f *testing.F) {
	f.Add([]byte(goodReview))
	f.Add([]byte(`{"commits":[{}]}`))
	f.Add([]byte(`{"reviewers": [""]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseReview(b)
		if err != nil {
			return
		}
		if len(p.Reviewers) == 0 || len(p.Commits) == 0 || !commitHex.MatchString(p.Range.Head) {
			t.Fatalf("accepted %+v", p)
		}
		for _, c := range p.Commits {
			if !commitHex.MatchString(c.Commit) {
				t.Fatalf("accepted commit %q", c.Commit)
			}
		}
		roundTrip(t, p, ParseReview)
	})
}
