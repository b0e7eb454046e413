package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds a hostile server's answer to every Decode function: none
// may panic, and what one accepts must keep the promise it makes.
func FuzzDecode(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "wire.golden"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(golden), "\n") {
		if strings.HasPrefix(line, "{") {
			f.Add([]byte(line), int64(0))
		}
	}
	f.Add([]byte(`{"evidence":[{"id":3},{"id":2}]}`), int64(0))
	f.Add([]byte(`{"evidence":[{"id":3}],"next":1}`), int64(1))
	f.Add([]byte(`{"evidence":[],"next":5}`), int64(0))
	f.Add([]byte(`{"evidence":[{"id":1,"integratedTime":"x"}]}`), int64(0))
	f.Add([]byte(`{"deployments":[{"id":2},{"id":2}]}`), int64(0))
	f.Add([]byte(`{"records":[{"id":1},{"id":2},{"id":3},{"id":4}]}`), int64(0))
	f.Add([]byte(`{"records":[null]}`), int64(0))
	f.Add([]byte(`{"ids":[3,2]}`), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, after int64) {
		if page, err := DecodeSearchResponse(b, after); err == nil {
			last := after
			for _, e := range page.Evidence {
				if e.ID <= last {
					t.Fatalf("accepted evidence %d after %d", e.ID, last)
				}
				last = e.ID
			}
			if page.Next != 0 && page.Next < last {
				t.Fatalf("accepted a continuation %d back into the page (last %d)", page.Next, last)
			}
			if _, err := json.Marshal(page); err != nil {
				t.Fatalf("accepted page does not encode: %v", err)
			}
		}
		if a, err := DecodeSignAnswer(b); err == nil && len(a.Bundle) == 0 {
			t.Fatal("accepted a sign answer without a bundle")
		}
		if a, err := DecodePolicyPushAnswer(b, "sha256:aa"); err == nil && a.Digest != "sha256:aa" {
			t.Fatal("accepted a policy push answer for another policy")
		}
		if a, err := DecodeTrustPushAnswer(b, 2); err == nil && a.Version != 2 {
			t.Fatal("accepted a trust root push answer for another version")
		}
		if page, err := DecodeDeploymentPage(b, after); err == nil {
			last := after
			for _, d := range page.Deployments {
				if d.ID <= last {
					t.Fatalf("accepted deployment %d after %d", d.ID, last)
				}
				last = d.ID
			}
		}
		if page, err := DecodeIncidentPage(b, after, 3); err == nil {
			if len(page.Records) > 3 {
				t.Fatalf("accepted %d incident records when 3 were asked for", len(page.Records))
			}
			last := after
			for _, r := range page.Records {
				if r.ID <= last {
					t.Fatalf("accepted incident record %d after %d", r.ID, last)
				}
				last = r.ID
			}
		}
		if id, err := DecodeIDAnswer(b, "x"); err == nil && id <= 0 {
			t.Fatalf("accepted ID %d", id)
		}
		if ids, err := DecodeIDsAnswer(b, 2); err == nil && (len(ids) != 2 || ids[0] <= 0 || ids[1] <= ids[0]) {
			t.Fatalf("accepted IDs %v for 2 records", ids)
		}
		DecodePushAnswer(b)
		DecodeTokenList(b)
		DecodeTokenStatus(b)
	})
}

func TestDecodeSearchResponseRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		body  string
		after int64
	}{
		"not JSON":             {`{"evidence":`, 0},
		"wrong type":           {`{"evidence":{}}`, 0},
		"out of order":         {`{"evidence":[{"id":3},{"id":2}]}`, 0},
		"repeated":             {`{"evidence":[{"id":3},{"id":3}]}`, 0},
		"not after":            {`{"evidence":[{"id":3}]}`, 3},
		"next into the page":   {`{"evidence":[{"id":3},{"id":4}],"next":3}`, 0},
		"next with empty page": {`{"evidence":[],"next":9}`, 0},
		"bad time":             {`{"evidence":[{"id":1,"indexedAt":"yesterday"}]}`, 0},
	} {
		if _, err := DecodeSearchResponse([]byte(tc.body), tc.after); err == nil {
			t.Errorf("%s: accepted %s", name, tc.body)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
	page, err := DecodeSearchResponse([]byte(`{"evidence":[{"id":4},{"id":6}],"next":6}`), 3)
	if err != nil || len(page.Evidence) != 2 || page.Next != 6 {
		t.Errorf("good page: %+v, %v", page, err)
	}
}
