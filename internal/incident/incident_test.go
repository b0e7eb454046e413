package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

func ev(source, key string, digest string, proven time.Time) *Evidence {
	return &Evidence{Source: source, ProvenAt: proven, Evidence: store.Evidence{SignerKeyID: key,
		Subjects: []store.Subject{{Name: source, Digests: map[string]string{"sha256": digest}}}}}
}

func TestFind(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	T := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	d := func(c string) string { return strings.Repeat(c, 64) }
	evs := []*Evidence{
		ev("before", a, d("1"), T.Add(-time.Hour)),
		ev("at", a, d("2"), T),
		ev("unproven", a, d("3"), time.Time{}),
		ev("other key", b, d("4"), T.Add(time.Hour)),
		ev("mixed-before", a, d("5"), T.Add(-time.Hour)),
		ev("mixed-after", a, d("5"), T.Add(time.Hour)),
	}
	f := Find(evs, Selector{KeyID: a}, T)
	var got []string
	for _, x := range f.Affected {
		got = append(got, x.Digest[7:8])
	}
	if strings.Join(got, ",") != "2,3,5" {
		t.Errorf("affected = %v, want 2 (at T), 3 (unproven), 5 (one piece after T)", got)
	}
	if len(f.Spared) != 1 || f.Spared[0].Digest != "sha256:"+d("1") {
		t.Errorf("spared = %+v, want only 1", f.Spared)
	}
}

func TestSelectorValidate(t *testing.T) {
	for _, s := range []Selector{{}, {KeyID: "xyz"}, {KeyID: strings.Repeat("a", 64), Builder: "b"}} {
		if s.Validate() == nil {
			t.Errorf("%+v validated", s)
		}
	}
}

func TestFileLedgerQuarantine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := FileLedger{Dir: dir}
	q := Quarantine{Ledger: l}
	art := "sha256:" + strings.Repeat("c", 64)
	if id, err := q.Quarantined(ctx, art); err != nil || id != "" {
		t.Fatalf("empty ledger: Quarantined = %q, %v", id, err)
	}
	id, err := NewID(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined, Artifact: art, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Quarantined(ctx, art); err != nil || got != id {
		t.Fatalf("Quarantined = %q, %v; want %s", got, err, id)
	}
	// invalid records are refused
	if _, err := l.Append(ctx, &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined, Time: time.Now()}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("quarantine without artifact: %v", err)
	}
	// a truncated line: the quarantine is unknown, never "not quarantined"
	p := filepath.Join(dir, "ledger.jsonl")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-2], 0o600)
	if _, err := q.Quarantined(ctx, "sha256:"+strings.Repeat("d", 64)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged ledger: %v, want ErrCorrupt", err)
	}
}

func TestFileLedgerAppendAll(t *testing.T) {
	ctx := context.Background()
	l := FileLedger{Dir: t.TempDir()}
	id, err := NewID(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var batch []*store.IncidentRecord
	for _, c := range "abc" {
		batch = append(batch, &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined,
			Artifact: "sha256:" + strings.Repeat(string(c), 64), Time: time.Now()})
	}
	// One malformed record appends none of the batch.
	bad := append(append([]*store.IncidentRecord{}, batch...), &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined, Time: time.Now()})
	if _, err := l.AppendAll(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("AppendAll with a malformed record = %v, want ErrInvalid", err)
	}
	if rs, err := l.List(ctx, store.IncidentQuery{}); err != nil || len(rs) != 0 {
		t.Fatalf("after the refused batch: %d records, %v", len(rs), err)
	}
	got, err := l.AppendAll(ctx, batch)
	if err != nil || len(got) != 3 {
		t.Fatalf("AppendAll = %d, %v", len(got), err)
	}
	for i, r := range got {
		if r.ID != int64(i+1) || r.RecordedAt.IsZero() || r.Artifact != batch[i].Artifact {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	q := Quarantine{Ledger: l}
	for _, r := range batch {
		if inc, err := q.Quarantined(ctx, r.Artifact); err != nil || inc != id {
			t.Errorf("Quarantined(%s) = %q, %v; want %s", r.Artifact, inc, err, id)
		}
	}
}

func TestReportMarshalAtMost(t *testing.T) {
	r := &Report{ID: "INC-20260301T120000Z-00000001", Found: &Findings{}, Running: []Placement{}, Rollbacks: []Rollback{}}
	for i := range 2000 {
		d := fmt.Sprintf("sha256:%064x", i)
		r.Found.Affected = append(r.Found.Affected, Artifact{Digest: d, Names: []string{"app"},
			Evidence: []Hit{{Source: fmt.Sprintf("server:%d", i), PredicateType: "https://slsa.dev/provenance/v1", Proof: "rfc3161 timestamp"}}})
		r.Quarantined = append(r.Quarantined, Quarantined{Artifact: d, Record: int64(i)})
	}
	r.Finish()
	full, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		max      int
		affected int
		abridged bool
	}{
		{len(full), 2000, false},
		{len(full) - 1, 2000, true},
		{20000, 0, true},
	} {
		b, err := r.MarshalAtMost(tt.max)
		if err != nil || len(b) > tt.max {
			t.Fatalf("MarshalAtMost(%d) = %d bytes, %v", tt.max, len(b), err)
		}
		var got Report
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Found.Affected) != tt.affected || (got.Abridged != "") != tt.abridged || got.Metrics.ArtifactsAffected != 2000 {
			t.Errorf("MarshalAtMost(%d): %d affected listed, abridged %q, metrics %d", tt.max, len(got.Found.Affected), got.Abridged, got.Metrics.ArtifactsAffected)
		}
		var txt strings.Builder
		got.WriteText(&txt)
		if !strings.Contains(txt.String(), "found: 2000 affected artifact(s)") {
			t.Errorf("MarshalAtMost(%d): text says %q", tt.max, strings.SplitN(txt.String(), "\n", 4)[2])
		}
	}
	if _, err := r.MarshalAtMost(100); err == nil {
		t.Errorf("MarshalAtMost(100) succeeded")
	}
}
