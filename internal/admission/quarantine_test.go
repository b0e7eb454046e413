package admission

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/store"
)

// TestQuarantine: with the incident ledger's quarantine (what the deploy
// gate consults), a quarantined digest is denied naming the incident even
// when an allow for it is cached, other digests are unaffected, and a
// ledger that cannot be read denies.
func TestQuarantine(t *testing.T) {
	dir := t.TempDir()
	ledger := incident.FileLedger{Dir: filepath.Join(dir, "incidents")}
	f := newFixture(t, func(c *Config) {
		c.AllowTTL = 10 * time.Hour
		c.Quarantine = incident.Quarantine{Ledger: ledger}
	})
	decide := func(uid string, images ...string) (bool, string) {
		t.Helper()
		_, r := f.post(review(t, uid, "dev", podKind, pod(images...)))
		if r.Response.UID != "" && string(r.Response.UID) != uid {
			t.Fatalf("uid %q, want %q", r.Response.UID, uid)
		}
		msg := ""
		if r.Response.Result != nil {
			msg = r.Response.Result.Message
		}
		return r.Response.Allowed, msg
	}

	// no ledger yet: nothing is quarantined; the allow is cached
	if ok, msg := decide("a1", "app@"+goodDigest); !ok {
		t.Fatalf("denied with no ledger: %s", msg)
	}
	if ok, _ := decide("a2", "app@"+goodDigest); !ok || f.fetches.Load() != 1 {
		t.Fatalf("allow not cached: %d fetches", f.fetches.Load())
	}

	id, err := incident.NewID(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Append(context.Background(), &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined,
		Artifact: goodDigest, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}

	// quarantined: denied over the cached allow, naming the incident,
	// without fetching evidence
	ok, msg := decide("q1", "app@"+goodDigest)
	if ok || !strings.Contains(msg, "quarantined by incident "+id) || !strings.Contains(msg, `container c0 image`) {
		t.Fatalf("quarantined digest: allowed=%v %q", ok, msg)
	}
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 (the quarantine needs no evidence)", n)
	}
	// with another image (the concurrent path) too, and only it is reported
	ok, msg = decide("q2", "app@"+noSBOM, "app@"+goodDigest)
	if ok || !strings.Contains(msg, "quarantined by incident "+id) || strings.Contains(msg, noSBOM[:20]) {
		t.Fatalf("two images: allowed=%v %q", ok, msg)
	}
	// another digest is not quarantined
	if ok, msg := decide("o1", "app@"+noSBOM); !ok {
		t.Fatalf("unquarantined digest denied: %s", msg)
	}
	// still denied on a later request
	if ok, _ := decide("q3", "app@"+goodDigest); ok {
		t.Fatal("quarantined digest allowed on a later request")
	}

	// a ledger that cannot be read denies everything (fail closed)
	p := filepath.Join(ledger.Dir, "ledger.jsonl")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	ok, msg = decide("u1", "app@"+noSBOM)
	if ok || !strings.Contains(msg, "couldn't read the incident quarantine") {
		t.Fatalf("unreadable ledger: allowed=%v %q", ok, msg)
	}
}
