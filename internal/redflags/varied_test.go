package redflags

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

var update = flag.Bool("update", false, "rewrite testdata/varied-history.flags")

// putIndex is an index red flags read and a test writes.
type putIndex interface {
	Index
	Put(ctx context.Context, e *store.Evidence) (int64, bool, error)
}

// variedHistory indexes in idx a history of 160 builds of two subject
// names in which the builder, the builder key, the signing identity and
// its issuer and the source change now and then, and come back (past the
// window of 8 builds compared), with unverified records among them, and
// returns the red flags predicate of every verified build as JSON, with a
// fixed clock.
func variedHistory(t testing.TB, idx putIndex) []string {
	t.Helper()
	h := newHistory(t, 17)
	var out []string
	for i := range 160 {
		s := h.ordinary()
		if i%5 == 4 {
			s.subject = "cli"
		}
		switch {
		case i%13 == 12:
			s.builder = "https://evil.example/builder@v1"
		case i%31 == 30:
			s.builder = fmt.Sprintf("https://custody.dev/builders/new%d@v1", i)
		}
		if i%11 == 10 {
			s.key = strings.Repeat("22", 32)
		}
		if i%17 == 16 {
			s.identity = "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"
			s.issuer = []string{"https://token.actions.githubusercontent.com", "https://evil.example"}[i/17%2]
		}
		if i%23 == 22 || i%41 == 40 {
			s.source = "git+https://github.com/attacker/app"
		}
		e := s.evidence(t)
		if i%19 == 18 { // stored unverified: not history
			e.SignerKeyID, e.SignerIdentity, e.SignerIssuer = "", "", ""
			e.SourceURI, e.BuilderID, e.BuildID, e.SourceCommit = "", "", "", ""
			if _, _, err := idx.Put(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			continue
		}
		id, _, err := idx.Put(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := idx.Search(context.Background(), store.Query{AfterID: id - 1, Limit: 1})
		if err != nil || len(got) != 1 {
			t.Fatalf("couldn't read back build %d: %v", i, err)
		}
		out = append(out, variedFlags(t, idx, got[0]))
	}
	return out
}

// variedFlags is the red flags predicate of e, as variedHistory computes
// it, in JSON.
func variedFlags(t testing.TB, idx Index, e *store.Evidence) string {
	res, err := Compute(context.Background(), idx, e, nil, Options{ComputedBy: "test", Window: 8,
		Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res[0].Predicate)
	return string(b)
}

// recompute computes again the red flags of every verified build in idx,
// in ID order, as variedHistory did when each was the newest.
func recompute(t testing.TB, idx Index) []string {
	var out []string
	rows, err := idx.Search(context.Background(), store.Query{PredicateType: attest.PredicateSLSAv1, Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rows {
		if attributed(e) {
			out = append(out, variedFlags(t, idx, e))
		}
	}
	return out
}

// summary is the flags of each predicate, one line per build.
func summary(t testing.TB, preds []string) string {
	var b strings.Builder
	for i, p := range preds {
		var rf struct {
			Lineage struct {
				SubjectName string `json:"subjectName"`
				Compared    int    `json:"compared"`
			} `json:"lineage"`
			Flags []struct{ Kind, Subject, Message string } `json:"flags"`
		}
		if err := json.Unmarshal([]byte(p), &rf); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d %s compared %d\n", i, rf.Lineage.SubjectName, rf.Lineage.Compared)
		for _, f := range rf.Flags {
			if f.Kind == KindDuration || f.Kind == KindUnusualHour {
				continue // timing: not what this history varies
			}
			fmt.Fprintf(&b, "\t%s %s: %s\n", f.Kind, f.Subject, f.Message)
		}
	}
	return b.String()
}

// TestVariedHistory: the identity flags (new source, builder, key,
// signer) of a varied history are those of testdata/varied-history.flags,
// written when they were computed from index searches alone (before the
// first-seen table).
func TestVariedHistory(t *testing.T) {
	got := summary(t, variedHistory(t, new(store.Memory)))
	const golden = "testdata/varied-history.flags"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("flags differ from %s:\n%s", golden, got)
	}
}

// TestBackendsSameFlags: the varied history has the same red flags,
// byte for byte, on every backend (Memory finds first seen by scanning
// every record; SQLite and PostgreSQL by their table), on an SQLite index
// created before first seen and filled by the migration, and computed
// again for every build once the history is complete.
func TestBackendsSameFlags(t *testing.T) {
	want := variedHistory(t, new(store.Memory))
	same := func(t *testing.T, got []string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d predicates, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("build %d:\n got %s\nwant %s", i, got[i], want[i])
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "index.db")
		s, err := store.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		same(t, variedHistory(t, s))
		same(t, recompute(t, s))
		s.Close()
		storetest.SQLiteBeforeFirstSeen(t, path)
		s, err = store.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		same(t, recompute(t, s))
	})
	t.Run("postgres", func(t *testing.T) {
		s := storetest.OpenPostgres(t)
		defer s.Close()
		same(t, variedHistory(t, s))
		same(t, recompute(t, s))
	})
}
