package rebuild

import (
	"encoding/json"
	"testing"
)

// FuzzParsePredicate: never panics, and whatever parses validates and
// survives a round trip.
func FuzzParsePredicate(f *testing.F) {
	f.Add([]byte(`{"matched": true, "subjects": [{"name": "app", "status": "match", "expected": {"sha256": "ab"}, "got": {"sha256": "ab"}}]}`))
	f.Add([]byte(`{"matched": false, "subjects": [{"name": "app", "status": "missing", "expected": {"sha256": "ab"}}], "toolchains": {"differs": ["go"]}}`))
	f.Add([]byte(`{"matched": null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePredicate(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePredicate(again); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseReview: never panics; what parses validates again.
func FuzzParseReview(f *testing.F) {
	f.Add([]byte(`{"repo": "git+https://h/o/r", "range": {"spec": "v1..HEAD"}, "commits": [{"commit": "` +
		"0123456789abcdef0123456789abcdef01234567" + `", "author": {"name": "a", "email": "a@e"}}], "reviewers": ["bob"]}`))
	f.Add([]byte(`{"reviewers": [""]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseReview(b)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
