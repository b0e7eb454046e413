// Package storetest is the conformance suite every backend of the registry
// index (store.SQLite, store.Postgres, store.Memory) must pass. A backend's
// test calls [Run] with a function that opens a new, empty store.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// Store is what the suite checks: every method of an index backend, as
// documented on store.SQLite. It is safe for concurrent use.
type Store interface {
	Put(ctx context.Context, e *store.Evidence) (id int64, existed bool, err error)
	Get(ctx context.Context, id int64) (*store.Evidence, error)
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	Count(ctx context.Context) (int64, error)
	FirstSeen(ctx context.Context, q store.FirstSeenQuery) (int64, error)
	AppendDeployment(ctx context.Context, d *store.Deployment) (int64, error)
	Deployments(ctx context.Context, q store.DeploymentQuery) ([]*store.Deployment, error)
	AppendIncidents(ctx context.Context, rs []*store.IncidentRecord) ([]int64, error)
	Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error)
	Close() error
}

// Run runs the conformance suite. open must return a new, empty store each
// time it is called; Run closes it.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Idempotent", testIdempotent},
		{"NotFound", testNotFound},
		{"QueryFields", testQueryFields},
		{"TimeRanges", testTimeRanges},
		{"IndexedAtFallback", testIndexedAtFallback},
		{"Pagination", testPagination},
		{"PageBytes", testPageBytes},
		{"Limits", testLimits},
		{"InvalidEvidence", testInvalidEvidence},
		{"InvalidQuery", testInvalidQuery},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Canceled", testCanceled},
		{"FirstSeen", testFirstSeen},
		{"FirstSeenConcurrent", testFirstSeenConcurrent},
		{"DeploymentsRoundTrip", testDeploymentsRoundTrip},
		{"DeploymentsQuery", testDeploymentsQuery},
		{"DeploymentsInvalid", testDeploymentsInvalid},
		{"DeploymentsCanceled", testDeploymentsCanceled},
		{"IncidentsRoundTrip", testIncidentsRoundTrip},
		{"IncidentsQuery", testIncidentsQuery},
		{"IncidentsLargeBatch", testIncidentsLargeBatch},
		{"IncidentsInvalid", testIncidentsInvalid},
		{"IncidentsCanceled", testIncidentsCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			tt.f(t, s)
		})
	}
}

// Key returns a fake signer key ID (hex sha256) derived from name.
func Key(name string) string {
	sum := sha256.Sum256([]byte("key:" + name))
	return hex.EncodeToString(sum[:])
}

// Digest returns a fake sha256 hex digest derived from name.
func Digest(name string) string {
	sum := sha256.Sum256([]byte("artifact:" + name))
	return hex.EncodeToString(sum[:])
}

// Bundle returns a small JSON document standing in for a Sigstore bundle;
// distinct n give distinct bundles.
func Bundle(n int) []byte {
	return fmt.Appendf(nil, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","test":%d}`, n)
}

// Evidence returns valid evidence number n with every field set.
func Evidence(n int) *store.Evidence {
	return &store.Evidence{
		Bundle: Bundle(n),
		Subjects: []store.Subject{
			{Name: fmt.Sprintf("app-%d.tar.gz", n), Digests: map[string]string{"sha256": Digest(fmt.Sprint(n))}},
		},
		PredicateType:  "https://slsa.dev/provenance/v1",
		SignerKeyID:    Key("k1"),
		SignerIdentity: "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
		SignerIssuer:   "https://token.actions.githubusercontent.com",
		BuilderID:      "https://github.com/actions/runner",
		SourceURI:      "git+https://github.com/org/repo",
		SourceCommit:   "0123456789abcdef0123456789abcdef01234567",
		BuildID:        fmt.Sprintf("build-%d", n),
		LogIndex:       int64(1000 + n),
		IntegratedTime: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour),
	}
}

func put(t *testing.T, s Store, e *store.Evidence) int64 {
	t.Helper()
	id, existed, err := s.Put(context.Background(), e)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if existed {
		t.Fatalf("Put of a new bundle said it existed (id %d)", id)
	}
	return id
}

func count(t *testing.T, s Store) int64 {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

func ids(es []*store.Evidence) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	in := Evidence(1)
	in.Subjects = append(in.Subjects, store.Subject{
		Name: "app.sbom.json",
		Digests: map[string]string{
			"sha256":     strings.ToUpper(Digest("sbom")),
			"sha512":     strings.Repeat("ab", 64),
			"gitCommit":  "0123456789abcdef0123456789abcdef01234567",
			"goModuleH1": "h1:Khu2En+0gcYPZ2kuIihEtJMj3FMuhPy5FqHJfFbZUuc=",
		},
	})
	in.IntegratedTime = time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("x", 3600))
	orig := *in
	before := time.Now().Add(-time.Minute)
	id := put(t, s, in)
	if id <= 0 {
		t.Fatalf("Put returned id %d, want > 0", id)
	}
	if !reflect.DeepEqual(*in, orig) {
		t.Errorf("Put modified its argument")
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	want := orig
	want.ID = id
	sum := sha256.Sum256(in.Bundle)
	want.BundleSHA256 = hex.EncodeToString(sum[:])
	want.IntegratedTime = time.Date(2025, 3, 4, 4, 6, 7, 891234000, time.UTC)
	want.Subjects = []store.Subject{in.Subjects[0], {
		Name: "app.sbom.json",
		Digests: map[string]string{
			"sha256":     Digest("sbom"),
			"sha512":     strings.Repeat("ab", 64),
			"gitCommit":  "0123456789abcdef0123456789abcdef01234567",
			"goModuleH1": "h1:Khu2En+0gcYPZ2kuIihEtJMj3FMuhPy5FqHJfFbZUuc=",
		},
	}}
	if got.IndexedAt.Before(before) || got.IndexedAt.Location() != time.UTC {
		t.Errorf("IndexedAt = %v, want a UTC time after %v", got.IndexedAt, before)
	}
	want.IndexedAt = got.IndexedAt
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("Get returned\n%+v\nwant\n%+v", got, &want)
	}

	// Search returns the same record.
	res, err := s.Search(ctx, store.Query{Digest: "sha512:" + strings.Repeat("AB", 64)})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(res) != 1 || !reflect.DeepEqual(res[0], &want) {
		t.Errorf("Search returned %+v, want [%+v]", res, &want)
	}

	// Evidence that is not logged and has no time.
	bare := &store.Evidence{Bundle: Bundle(2), LogIndex: -1,
		Subjects: []store.Subject{{Digests: map[string]string{"sha256": Digest("bare")}}}}
	id2 := put(t, s, bare)
	if id2 <= id {
		t.Errorf("second Put returned id %d, want > %d", id2, id)
	}
	got2, err := s.Get(ctx, id2)
	if err != nil {
		t.Fatalf("Get(%d): %v", id2, err)
	}
	if got2.LogIndex != -1 || !got2.IntegratedTime.IsZero() || got2.Subjects[0].Name != "" || got2.IndexedAt.IsZero() {
		t.Errorf("Get(%d) = %+v, want log index -1, zero integrated time, empty subject name, indexed time", id2, got2)
	}
}

func testIdempotent(t *testing.T, s Store) {
	ctx := context.Background()
	id := put(t, s, Evidence(1))
	first, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	again := Evidence(1)
	again.BuilderID = "https://other.example/builder"
	sum := sha256.Sum256(again.Bundle)
	again.BundleSHA256 = strings.ToUpper(hex.EncodeToString(sum[:]))
	for i, e := range []*store.Evidence{Evidence(1), again} {
		id2, existed, err := s.Put(ctx, e)
		if err != nil || !existed || id2 != id {
			t.Errorf("Put #%d of the same bundle = %d, %v, %v; want %d, true, nil", i+2, id2, existed, err, id)
		}
	}
	if n := count(t, s); n != 1 {
		t.Errorf("Count = %d after three Puts of one bundle, want 1", n)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("a repeated Put changed the record:\n%+v\nwas\n%+v", got, first)
	}
	if id2 := put(t, s, Evidence(2)); id2 <= id {
		t.Errorf("next Put returned id %d, want > %d", id2, id)
	}
}

func testNotFound(t *testing.T, s Store) {
	id := put(t, s, Evidence(1))
	for _, missing := range []int64{0, -1, id + 1, 1 << 60} {
		t.Run(fmt.Sprint(missing), func(t *testing.T) {
			e, err := s.Get(context.Background(), missing)
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%d) = %v, %v; want ErrNotFound", missing, e, err)
			}
		})
	}
	res, err := s.Search(context.Background(), store.Query{Digest: "sha256:" + Digest("nothing")})
	if err != nil || len(res) != 0 {
		t.Errorf("Search for an unknown digest = %v, %v; want nothing", res, err)
	}
}

func testQueryFields(t *testing.T, s Store) {
	ctx := context.Background()
	// Six records that differ field by field. Records 0 and 1 share the
	// artifact bin (under different digest sets); 2 shares the name of 0's
	// artifact but not its digest.
	es := []*store.Evidence{Evidence(0), Evidence(1), Evidence(2), Evidence(3), Evidence(4), Evidence(5)}
	es[0].Subjects = []store.Subject{
		{Name: "bin", Digests: map[string]string{"sha256": Digest("bin"), "sha512": strings.Repeat("cd", 64)}},
		{Name: "lib", Digests: map[string]string{"sha256": Digest("lib")}},
	}
	es[1].Subjects = []store.Subject{{Name: "bin-renamed", Digests: map[string]string{"sha256": Digest("bin")}}}
	es[1].PredicateType = "https://cyclonedx.org/bom"
	es[2].Subjects = []store.Subject{{Name: "bin", Digests: map[string]string{"sha256": Digest("bin2")}}}
	es[2].SignerKeyID = Key("k2")
	es[3].SignerKeyID = ""
	es[3].SignerIdentity = "mailto:alice@example.com"
	es[3].SignerIssuer = "https://accounts.example.com"
	es[4].BuilderID = "https://builder.example/b2"
	es[4].SourceCommit = "fedcba9876543210fedcba9876543210fedcba98"
	es[5].SourceURI = "git+https://github.com/org/other"
	es[5].SourceCommit = "fedcba9876543210fedcba9876543210fedcba98"
	var id [6]int64
	for i, e := range es {
		id[i] = put(t, s, e)
	}

	tests := []struct {
		name string
		q    store.Query
		want []int
	}{
		{"all", store.Query{}, []int{0, 1, 2, 3, 4, 5}},
		{"digest", store.Query{Digest: "sha256:" + Digest("bin")}, []int{0, 1}},
		{"digest upper case", store.Query{Digest: "sha256:" + strings.ToUpper(Digest("bin"))}, []int{0, 1}},
		{"digest other alg", store.Query{Digest: "sha512:" + strings.Repeat("cd", 64)}, []int{0}},
		{"digest second subject", store.Query{Digest: "sha256:" + Digest("lib")}, []int{0}},
		{"digest wrong alg", store.Query{Digest: "sha512:" + Digest("bin")}, nil},
		{"digest unknown", store.Query{Digest: "sha256:" + Digest("none")}, nil},
		{"subject name", store.Query{SubjectName: "bin"}, []int{0, 2}},
		{"digest and name same subject", store.Query{Digest: "sha256:" + Digest("bin"), SubjectName: "bin"}, []int{0}},
		{"digest and name different subjects", store.Query{Digest: "sha256:" + Digest("bin"), SubjectName: "lib"}, nil},
		{"predicate type", store.Query{PredicateType: "https://cyclonedx.org/bom"}, []int{1}},
		{"signer key", store.Query{SignerKeyID: Key("k2")}, []int{2}},
		{"signer key upper case", store.Query{SignerKeyID: strings.ToUpper(Key("k2"))}, []int{2}},
		{"signer identity", store.Query{SignerIdentity: "mailto:alice@example.com"}, []int{3}},
		{"builder", store.Query{BuilderID: "https://builder.example/b2"}, []int{4}},
		{"source uri", store.Query{SourceURI: "git+https://github.com/org/other"}, []int{5}},
		{"source commit", store.Query{SourceCommit: "fedcba9876543210fedcba9876543210fedcba98"}, []int{4, 5}},
		{"build id", store.Query{BuildID: "build-3"}, []int{3}},
		{"commit and uri", store.Query{SourceCommit: "fedcba9876543210fedcba9876543210fedcba98",
			SourceURI: "git+https://github.com/org/repo"}, []int{4}},
		{"key and predicate", store.Query{SignerKeyID: Key("k1"), PredicateType: "https://slsa.dev/provenance/v1"}, []int{0, 4, 5}},
		{"digest and key", store.Query{Digest: "sha256:" + Digest("bin"), SignerKeyID: Key("k1")}, []int{0, 1}},
		{"digest and predicate", store.Query{Digest: "sha256:" + Digest("bin"), PredicateType: "https://cyclonedx.org/bom"}, []int{1}},
		{"digest and builder mismatch", store.Query{Digest: "sha256:" + Digest("bin"), BuilderID: "https://builder.example/b2"}, nil},
		{"every field", store.Query{
			Digest: "sha256:" + Digest("bin"), SubjectName: "bin-renamed", PredicateType: "https://cyclonedx.org/bom",
			SignerKeyID: Key("k1"), SignerIdentity: es[1].SignerIdentity, BuilderID: es[1].BuilderID,
			SourceURI: es[1].SourceURI, SourceCommit: es[1].SourceCommit, BuildID: "build-1",
			Since: es[1].IntegratedTime, Until: es[1].IntegratedTime.Add(time.Second), AfterID: id[0], Limit: 1,
		}, []int{1}},
		{"every field, one wrong", store.Query{
			Digest: "sha256:" + Digest("bin"), SubjectName: "bin-renamed", PredicateType: "https://cyclonedx.org/bom",
			SignerKeyID: Key("k1"), SignerIdentity: es[1].SignerIdentity, BuilderID: es[1].BuilderID,
			SourceURI: es[1].SourceURI, SourceCommit: es[1].SourceCommit, BuildID: "build-2",
		}, nil},
		{"digest without predicate", store.Query{Digest: "sha256:" + Digest("bin"), ExcludePredicateTypes: []string{"https://cyclonedx.org/bom"}}, []int{0}},
		{"key without two predicates", store.Query{SignerKeyID: Key("k1"),
			ExcludePredicateTypes: []string{"https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1"}}, nil},
		{"excluding an absent predicate", store.Query{SignerKeyID: Key("k1"), ExcludePredicateTypes: []string{"https://example.com/none"}}, []int{0, 1, 4, 5}},
		{"after id", store.Query{SignerKeyID: Key("k1"), AfterID: id[0]}, []int{1, 4, 5}},
		{"limit", store.Query{SignerKeyID: Key("k1"), Limit: 2}, []int{0, 1}},
		{"newest first", store.Query{SignerKeyID: Key("k1"), Newest: true}, []int{5, 4, 1, 0}},
		{"newest page", store.Query{SignerKeyID: Key("k1"), Newest: true, Limit: 2}, []int{5, 4}},
		{"newest before id", store.Query{SignerKeyID: Key("k1"), Newest: true, BeforeID: id[4]}, []int{1, 0}},
		{"before and after id", store.Query{SignerKeyID: Key("k1"), AfterID: id[0], BeforeID: id[5]}, []int{1, 4}},
		{"newest of a subject and source", store.Query{SubjectName: "bin", SourceURI: es[0].SourceURI, Newest: true, Limit: 1}, []int{2}},
		{"newest of a subject before", store.Query{SubjectName: "bin", Newest: true, BeforeID: id[2]}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Search(ctx, tt.q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			want := []int64{}
			for _, i := range tt.want {
				want = append(want, id[i])
			}
			if got := ids(res); !slices.Equal(got, want) {
				t.Errorf("Search(%+v) = ids %v, want %v", tt.q, got, want)
			}
			for _, e := range res {
				if len(e.Subjects) == 0 || len(e.Bundle) == 0 {
					t.Errorf("Search returned evidence %d without subjects or bundle", e.ID)
				}
			}
		})
	}
}

func testTimeRanges(t *testing.T, s Store) {
	ctx := context.Background()
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var id [5]int64
	for i := range id {
		e := Evidence(i)
		e.IntegratedTime = base.Add(time.Duration(i) * time.Hour)
		id[i] = put(t, s, e)
	}
	h := func(n int) time.Time { return base.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name         string
		since, until time.Time
		want         []int
	}{
		{"since inclusive", h(2), time.Time{}, []int{2, 3, 4}},
		{"until exclusive", time.Time{}, h(2), []int{0, 1}},
		{"window", h(1), h(3), []int{1, 2}},
		{"between records", h(1).Add(time.Minute), h(2), nil},
		{"sub-microsecond since", h(1).Add(time.Nanosecond), time.Time{}, []int{2, 3, 4}},
		{"sub-microsecond until", time.Time{}, h(1).Add(time.Nanosecond), []int{0, 1}},
		{"empty window", h(2), h(2), nil},
		{"other time zone", h(3).In(time.FixedZone("x", -7*3600)), time.Time{}, []int{3, 4}},
		{"before all", time.Time{}, h(-1), nil},
		{"after all", h(5), time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Search(ctx, store.Query{Since: tt.since, Until: tt.until})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			want := []int64{}
			for _, i := range tt.want {
				want = append(want, id[i])
			}
			if got := ids(res); !slices.Equal(got, want) {
				t.Errorf("Search(since %v, until %v) = %v, want %v", tt.since, tt.until, got, want)
			}
		})
	}
}

func testIndexedAtFallback(t *testing.T, s Store) {
	ctx := context.Background()
	old := Evidence(1) // integrated in 2025
	oldID := put(t, s, old)
	before := time.Now().Add(-time.Hour)
	untimed := Evidence(2)
	untimed.IntegratedTime = time.Time{}
	untimed.LogIndex = -1
	untimedID := put(t, s, untimed)
	after := time.Now().Add(time.Hour)

	tests := []struct {
		name         string
		since, until time.Time
		want         []int64
	}{
		{"around indexing", before, after, []int64{untimedID}},
		{"since indexing", before, time.Time{}, []int64{untimedID}},
		{"before indexing", time.Time{}, before, []int64{oldID}},
		{"after indexing", after, time.Time{}, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Search(ctx, store.Query{Since: tt.since, Until: tt.until})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if got := ids(res); !slices.Equal(got, tt.want) {
				t.Errorf("Search(since %v, until %v) = %v, want %v", tt.since, tt.until, got, tt.want)
			}
		})
	}
}

func testPagination(t *testing.T, s Store) {
	var want []int64
	for i := range 23 {
		e := Evidence(i)
		if i%3 == 0 {
			e.SignerKeyID = Key("other")
		}
		id := put(t, s, e)
		if i%3 != 0 {
			want = append(want, id)
		}
	}
	for _, limit := range []int{1, 4, 5, 15, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			got := pageAll(t, s, store.Query{SignerKeyID: Key("k1"), Limit: limit}, len(want), func(res []*store.Evidence, _ int) {
				if len(res) > limit {
					t.Fatalf("page of %d records, limit %d", len(res), limit)
				}
			})
			if !slices.Equal(got, want) {
				t.Errorf("pages gave %v, want %v", got, want)
			}
		})
	}
}

// pageAll pages through q to its end (at most n+1 pages), calling check
// on each page with the number of records before it, and returns the IDs.
func pageAll(t *testing.T, s Store, q store.Query, n int, check func(page []*store.Evidence, before int)) []int64 {
	t.Helper()
	var got []int64
	for pages := 0; ; pages++ {
		if pages > n+1 {
			t.Fatalf("pagination does not end")
		}
		res, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		if len(res) == 0 {
			return got
		}
		check(res, len(got))
		got = append(got, ids(res)...)
		q.AfterID = res[len(res)-1].ID
	}
}

// testPageBytes: Query.MaxBytes ends a page at the record whose bundle
// reaches it, and paging by it still returns every record once.
func testPageBytes(t *testing.T, s Store) {
	var want []int64
	size := int64(0)
	for i := range 10 {
		e := Evidence(i)
		e.Bundle = fmt.Appendf(nil, `{"test":%d,"pad":%q}`, i, strings.Repeat("x", 1000))
		size = int64(len(e.Bundle))
		want = append(want, put(t, s, e))
	}
	for _, maxBytes := range []int64{1, size, 2*size + 1, 3 * size, 100 * size} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			got := pageAll(t, s, store.Query{Limit: 1000, MaxBytes: maxBytes}, len(want), func(res []*store.Evidence, before int) {
				var total int64
				for i, e := range res {
					if total >= maxBytes {
						t.Fatalf("page goes on after %d bytes (record %d of %d), cap %d", total, i, len(res), maxBytes)
					}
					total += int64(len(e.Bundle))
				}
				if before+len(res) < len(want) && total < maxBytes {
					t.Fatalf("page of %d bytes ends before the cap %d and before the records", total, maxBytes)
				}
			})
			if !slices.Equal(got, want) {
				t.Errorf("pages gave %v, want %v", got, want)
			}
		})
	}
}

func testLimits(t *testing.T, s Store) {
	ctx := context.Background()
	n := store.DefaultLimit + 5
	for i := range n {
		put(t, s, Evidence(i))
	}
	tests := []struct {
		limit, want int
	}{
		{0, store.DefaultLimit},
		{1, 1},
		{store.DefaultLimit + 1, store.DefaultLimit + 1},
		{store.MaxLimit, n},
		{store.MaxLimit * 10, n},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			res, err := s.Search(ctx, store.Query{Limit: tt.limit})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if len(res) != tt.want {
				t.Errorf("Search(limit %d) returned %d records, want %d", tt.limit, len(res), tt.want)
			}
		})
	}
	if c := count(t, s); c != int64(n) {
		t.Errorf("Count = %d, want %d", c, n)
	}
}

func testInvalidEvidence(t *testing.T, s Store) {
	ctx := context.Background()
	put(t, s, Evidence(0))
	big := make([]byte, store.MaxBundleSize+1)
	for i := range big {
		big[i] = ' '
	}
	big[0] = '1'
	tests := []struct {
		name   string
		change func(e *store.Evidence)
	}{
		{"empty bundle", func(e *store.Evidence) { e.Bundle = nil }},
		{"bundle not json", func(e *store.Evidence) { e.Bundle = []byte(`{"mediaType":`) }},
		{"bundle too large", func(e *store.Evidence) { e.Bundle = big }},
		{"bundle sha256 mismatch", func(e *store.Evidence) { e.BundleSHA256 = Digest("x") }},
		{"no subjects", func(e *store.Evidence) { e.Subjects = nil }},
		{"subject without digests", func(e *store.Evidence) {
			e.Subjects = append(e.Subjects, store.Subject{Name: "x"})
		}},
		{"empty digest", func(e *store.Evidence) { e.Subjects[0].Digests["sha512"] = "" }},
		{"empty algorithm", func(e *store.Evidence) { e.Subjects[0].Digests[""] = Digest("x") }},
		{"algorithm with colon", func(e *store.Evidence) { e.Subjects[0].Digests["sha:256"] = Digest("x") }},
		{"digest with space", func(e *store.Evidence) { e.Subjects[0].Digests["sha512"] = "ab cd" }},
		{"too many digests", func(e *store.Evidence) {
			for i := range store.MaxDigests + 1 {
				e.Subjects = append(e.Subjects, store.Subject{Name: fmt.Sprint(i), Digests: map[string]string{"sha256": Digest(fmt.Sprint(i))}})
			}
		}},
		{"signer key not hex", func(e *store.Evidence) { e.SignerKeyID = "not-a-key" }},
		{"signer key short", func(e *store.Evidence) { e.SignerKeyID = "abcd" }},
		{"nul in builder", func(e *store.Evidence) { e.BuilderID = "a\x00b" }},
		{"invalid utf-8 in subject name", func(e *store.Evidence) { e.Subjects[0].Name = "\xff\xfe" }},
		{"identity too long", func(e *store.Evidence) { e.SignerIdentity = strings.Repeat("a", store.MaxFieldLen+1) }},
		{"log index below -1", func(e *store.Evidence) { e.LogIndex = -2 }},
		{"integrated time before 1970", func(e *store.Evidence) { e.IntegratedTime = time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC) }},
		{"integrated time after 9999", func(e *store.Evidence) { e.IntegratedTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Evidence(1)
			tt.change(e)
			id, existed, err := s.Put(ctx, e)
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("Put = %d, %v, %v; want ErrInvalid", id, existed, err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error message is %d bytes long, want a short one", len(err.Error()))
			}
			t.Logf("%v", err)
		})
	}
	if n := count(t, s); n != 1 {
		t.Errorf("Count = %d after rejected Puts, want 1", n)
	}
	for _, q := range []store.Query{{BuildID: "build-1"}, {Digest: "sha256:" + Digest("1")}} {
		if res, err := s.Search(ctx, q); err != nil || len(res) != 0 {
			t.Errorf("Search(%+v) after rejected Puts = %d records, %v; want none", q, len(res), err)
		}
	}
	// The valid version of the rejected evidence is new.
	put(t, s, Evidence(1))
	if _, _, err := s.Put(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Put(nil) = %v, want ErrInvalid", err)
	}
}

func testInvalidQuery(t *testing.T, s Store) {
	put(t, s, Evidence(0))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    store.Query
	}{
		{"digest without algorithm", store.Query{Digest: Digest("x")}},
		{"digest empty value", store.Query{Digest: "sha256:"}},
		{"digest empty algorithm", store.Query{Digest: ":" + Digest("x")}},
		{"negative limit", store.Query{Limit: -1}},
		{"negative after id", store.Query{AfterID: -5}},
		{"since after until", store.Query{Since: base.Add(time.Hour), Until: base}},
		{"empty excluded predicate type", store.Query{ExcludePredicateTypes: []string{""}}},
		{"too many excluded predicate types", store.Query{ExcludePredicateTypes: strings.Split("a b c d e f g h i", " ")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Search(context.Background(), tt.q)
			if !errors.Is(err, store.ErrInvalidQuery) {
				t.Errorf("Search(%+v) = %d records, %v; want ErrInvalidQuery", tt.q, len(res), err)
			}
		})
	}
}

func testConcurrentPuts(t *testing.T, s Store) {
	ctx := context.Background()
	const workers, each = 8, 12
	type result struct {
		n       int
		id      int64
		existed bool
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []result
		errs    []error
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Every bundle is put by two workers.
				n := (w/2)*each + i
				id, existed, err := s.Put(ctx, Evidence(n))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				results = append(results, result{n, id, existed})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	unique := workers / 2 * each
	idOf := map[int]int64{}
	news := map[int]int{}
	for _, r := range results {
		if prev, ok := idOf[r.n]; ok && prev != r.id {
			t.Errorf("bundle %d stored under ids %d and %d", r.n, prev, r.id)
		}
		idOf[r.n] = r.id
		if !r.existed {
			news[r.n]++
		}
	}
	for n := range unique {
		if news[n] != 1 {
			t.Errorf("bundle %d: %d Puts said new, want exactly 1", n, news[n])
		}
	}
	if c := count(t, s); c != int64(unique) {
		t.Errorf("Count = %d, want %d", c, unique)
	}
	res, err := s.Search(ctx, store.Query{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != unique {
		t.Errorf("Search returned %d records, want %d", len(res), unique)
	}
	for n, id := range idOf {
		e, err := s.Get(ctx, id)
		if err != nil {
			t.Errorf("Get(%d): %v", id, err)
			continue
		}
		if e.BuildID != fmt.Sprintf("build-%d", n) {
			t.Errorf("Get(%d) returned build %q, want build-%d", id, e.BuildID, n)
		}
	}
}

func testCanceled(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Put(ctx, Evidence(1)); err == nil {
		t.Errorf("Put with a canceled context succeeded")
	}
	if _, err := s.Search(ctx, store.Query{}); err == nil {
		t.Errorf("Search with a canceled context succeeded")
	}
	if n := count(t, s); n != 0 {
		t.Errorf("Count = %d after a canceled Put, want 0", n)
	}
}
