package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
)

// The search response writes stored bundles as they are; it must decode to
// what encoding every record with encoding/json gives.
func TestSearchResponseKeepsBundles(t *testing.T) {
	now := time.Date(2026, 11, 25, 22, 0, 0, 123, time.UTC)
	found := []*store.Evidence{
		{ID: 1, BundleSHA256: "aa", Bundle: []byte("{\n  \"mediaType\": \"x\",\n  \"n\": [1, 2]\n}\n"), PredicateType: "p",
			SignerKeyID: "k", Subjects: []store.Subject{{Name: "a", Digests: map[string]string{"sha256": "00"}}},
			LogIndex: -1, IndexedAt: now, IntegratedTime: now},
		{ID: 2, Bundle: []byte(`{"s":"\"quoted\" \u00e9"}`), IndexedAt: now},
		{ID: 3, IndexedAt: now},
	}
	want, err := json.Marshal(api.SearchResponse{Evidence: []api.Evidence{ToJSON(found[0]), ToJSON(found[1]), ToJSON(found[2])}, Next: 3})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeSearchResponse(&buf, found, 3); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if !json.Valid(got) {
		t.Fatalf("response is not JSON: %s", got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("search response\n%s\nwant (as encoding/json)\n%s", got, want)
	}
	buf.Reset()
	if err := writeSearchResponse(&buf, nil, 0); err != nil || buf.String() != "{\"evidence\":[]}\n" {
		t.Errorf("empty search response = %q, %v", buf.String(), err)
	}
}
