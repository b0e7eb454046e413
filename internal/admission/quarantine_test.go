package admission

import (
	"context"
	"math"
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

// TestQuarantineWatcher: with the quarantine read through an
// incident.Watcher (custody admission --server), everything is denied
// until the first sync; a quarantine recorded later is denied over a
// cached allow once a sync has seen it; when the ledger cannot be read
// for longer than the maximum staleness every request is denied, saying
// the quarantine is stale; /metrics shows the sync's age and errors.
func TestQuarantineWatcher(t *testing.T) {
	ctx := context.Background()
	ledger := incident.FileLedger{Dir: filepath.Join(t.TempDir(), "incidents")}
	watcher := &incident.Watcher{Ledger: ledger, Interval: time.Second, MaxStale: 10 * time.Second}
	f := newFixture(t, func(c *Config) {
		c.AllowTTL = 10 * time.Hour
		watcher.Now = c.Now
		c.Quarantine = watcher
	})
	decide := func(uid string, images ...string) (bool, string) {
		t.Helper()
		_, r := f.post(review(t, uid, "dev", podKind, pod(images...)))
		msg := ""
		if r.Response.Result != nil {
			msg = r.Response.Result.Message
		}
		return r.Response.Allowed, msg
	}
	advance := func(d time.Duration) {
		now := f.now.Load().Add(d)
		f.now.Store(&now)
	}

	if ok, msg := decide("n1", "app@"+goodDigest); ok || !strings.Contains(msg, "stale") {
		t.Fatalf("before the first sync: allowed=%v %q, want a denial saying the quarantine is stale", ok, msg)
	}
	if m := f.scrape(); !math.IsInf(m["custody_admission_quarantine_sync_age_seconds"], 1) {
		t.Errorf("sync age before the first sync = %v, want +Inf", m["custody_admission_quarantine_sync_age_seconds"])
	}
	if err := watcher.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, msg := decide("a1", "app@"+goodDigest); !ok {
		t.Fatalf("after a sync: denied: %s", msg)
	}

	id, err := incident.NewID(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Append(ctx, &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined,
		Artifact: goodDigest, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, msg := decide("q1", "app@"+goodDigest); ok || !strings.Contains(msg, "quarantined by incident "+id) {
		t.Fatalf("quarantined digest after a sync: allowed=%v %q", ok, msg)
	}
	if ok, msg := decide("o1", "app@"+noSBOM); !ok {
		t.Fatalf("unquarantined digest denied: %s", msg)
	}

	// the ledger becomes unreadable: answers from the copy until it is
	// older than MaxStale, then every request is denied
	p := filepath.Join(ledger.Dir, "ledger.jsonl")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	advance(5 * time.Second)
	if err := watcher.Sync(ctx); err == nil {
		t.Fatal("sync of a damaged ledger succeeded")
	}
	if ok, msg := decide("o2", "app@"+noSBOM); !ok {
		t.Fatalf("within MaxStale: denied: %s", msg)
	}
	advance(6 * time.Second)
	ok, msg := decide("s1", "app@"+noSBOM)
	if ok || !strings.Contains(msg, "stale") || !strings.Contains(msg, "couldn't read the incident quarantine") {
		t.Fatalf("past MaxStale: allowed=%v %q, want a denial saying the quarantine is stale", ok, msg)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		"custody_admission_quarantine_sync_age_seconds":  11,
		"custody_admission_quarantine_sync_errors_total": 1,
		"custody_admission_quarantined_artifacts":        1,
	})
}
