package trust

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// The signing config names the log as Rekor v2 and the TSA, parses with
// sigstore-go, and is the same bytes every time (protojson alone varies
// its whitespace from run to run).
func TestMarshalSigningConfigJSON(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &Root{Tlogs: []TransparencyLog{{BaseURL: "https://custody.example", Window: Window{Start: start}}},
		TSAs: []TimestampAuthority{{URI: "https://custody.example/api/v1/timestamp", Window: Window{Start: start}}}}
	first, err := r.MarshalSigningConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if b, _ := r.MarshalSigningConfigJSON(); !bytes.Equal(b, first) {
			t.Fatalf("signing config changed between runs:\n%s\n%s", first, b)
		}
	}
	if !strings.Contains(string(first), `"rekorTlogUrls":[{"url":"https://custody.example","majorApiVersion":2`) {
		t.Errorf("signing config %s", first)
	}
	sc, err := root.NewSigningConfigFromJSON(first)
	if err != nil {
		t.Fatal(err)
	}
	if logs, tsas := sc.RekorLogURLs(), sc.TimestampAuthorityURLs(); len(logs) != 1 || len(tsas) != 1 || !logs[0].ValidityPeriodStart.Equal(start) {
		t.Errorf("logs %v, TSAs %v", logs, tsas)
	}
	if _, err := (&Root{}).MarshalSigningConfigJSON(); err == nil {
		t.Error("a root with no services gave a signing config")
	}
}
