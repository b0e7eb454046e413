package redflags

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
)

const (
	testSource  = "git+https://github.com/org/app"
	testBuilder = "https://custody.dev/builders/ci@v1"
	testKey     = "1111111111111111111111111111111111111111111111111111111111111111"
)

// spec describes one synthetic build; the zero fields take ordinary values.
type spec struct {
	n          int
	source     string
	ref        string
	builder    string
	key        string
	deps       map[string]string // purl name@version -> dirHash
	toolchain  string
	unpinned   []attest.Pinning
	at         time.Time
	duration   time.Duration
	subject    string
	predicates int
	// identity and issuer, when set, sign the build keyless (no key).
	identity, issuer string
}

// ordinaryDeps are the dependencies of every ordinary build.
func ordinaryDeps() map[string]string {
	return map[string]string{
		"pkg:golang/golang.org/x/mod@v0.30.0":       strings.Repeat("a1", 32),
		"pkg:golang/golang.org/x/sys@v0.38.0":       strings.Repeat("b2", 32),
		"pkg:golang/github.com/spf13/cobra@v1.10.1": strings.Repeat("c3", 32),
	}
}

// evidence makes the index record of a synthetic build: a bundle whose
// DSSE payload is a custody SLSA v1 provenance, attributed to its key.
func (s spec) evidence(t testing.TB) *store.Evidence {
	if s.source == "" {
		s.source = testSource
	}
	if s.ref == "" {
		s.ref = "refs/heads/main"
	}
	if s.builder == "" {
		s.builder = testBuilder
	}
	if s.key == "" {
		s.key = testKey
	}
	if s.deps == nil {
		s.deps = ordinaryDeps()
	}
	if s.toolchain == "" {
		s.toolchain = "go1.26.8 linux/amd64"
	}
	if s.subject == "" {
		s.subject = "app"
	}
	deps := []attest.ResourceDescriptor{{URI: s.source + "@" + s.ref, Digest: map[string]string{"gitCommit": fmt.Sprintf("%040x", s.n)}}}
	for _, uri := range slices.Sorted(maps.Keys(s.deps)) { // the same bytes every run
		deps = append(deps, attest.ResourceDescriptor{URI: uri, Digest: map[string]string{"dirHash": s.deps[uri]}})
	}
	started := s.at
	finished := started.Add(s.duration)
	pred := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{
			BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"./build.sh"},
				Source: attest.CustodySource{URI: s.source, Ref: s.ref, Commit: fmt.Sprintf("%040x", s.n)}},
			InternalParameters:   attest.CustodyInternalParameters{Toolchains: map[string]string{"go": s.toolchain}, Pinning: s.unpinned},
			ResolvedDependencies: deps,
		},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: s.builder},
			Metadata: &attest.BuildMetadata{InvocationID: fmt.Sprintf("build-%d", s.n), StartedOn: &started, FinishedOn: &finished}},
	}
	sum := sha256.Sum256([]byte(fmt.Sprint(s.n, s.subject, s.source)))
	st, err := attest.NewStatement([]attest.Subject{{Name: s.subject, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}}, attest.PredicateSLSAv1, pred)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := json.Marshal(map[string]any{"dsseEnvelope": map[string]any{"payload": payload, "payloadType": attest.PayloadType}})
	e := &store.Evidence{Bundle: bundle, PredicateType: attest.PredicateSLSAv1,
		Subjects:    []store.Subject{{Name: s.subject, Digests: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		SignerKeyID: s.key, BuilderID: s.builder, SourceURI: s.source, SourceCommit: fmt.Sprintf("%040x", s.n),
		BuildID: fmt.Sprintf("build-%d", s.n), LogIndex: int64(s.n), IntegratedTime: finished.Add(time.Second)}
	if s.identity != "" {
		e.SignerKeyID, e.SignerIdentity, e.SignerIssuer = "", s.identity, s.issuer
	}
	return e
}

// history holds synthetic builds in an index.
type history struct {
	t   testing.TB
	idx *store.Memory
	rng *rand.Rand
	n   int
	at  time.Time
}

func newHistory(t testing.TB, seed uint64) *history {
	return &history{t: t, idx: new(store.Memory), rng: rand.New(rand.NewPCG(seed, seed+1)),
		at: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

// ordinary returns the spec of the next ordinary build: a weekday during
// office hours (08:00–18:59 UTC), lasting about 7 s with log-normal jitter
// and an occasional cold cache (1.5–2.2×).
func (h *history) ordinary() spec {
	h.n++
	h.at = h.at.Add(time.Duration(2+h.rng.IntN(20)) * time.Hour)
	for h.at.Weekday() == time.Saturday || h.at.Weekday() == time.Sunday || h.at.Hour() < 8 || h.at.Hour() > 18 {
		h.at = h.at.Add(time.Hour)
	}
	at := h.at.Add(time.Duration(h.rng.IntN(3600)) * time.Second)
	d := 7 * time.Second * time.Duration(1000*math.Exp(0.15*h.rng.NormFloat64())) / 1000
	if h.rng.IntN(10) == 0 {
		d = d * time.Duration(15+h.rng.IntN(8)) / 10
	}
	return spec{n: h.n, at: at, duration: d}
}

// put indexes s and returns its record with its ID.
func (h *history) put(s spec) *store.Evidence {
	e := s.evidence(h.t)
	id, _, err := h.idx.Put(context.Background(), e)
	if err != nil {
		h.t.Fatal(err)
	}
	e.ID = id
	e.BundleSHA256 = hexSum(e.Bundle)
	return e
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// flags indexes s and computes its red flags.
func (h *history) flags(s spec) []attest.RedFlag {
	h.t.Helper()
	e := h.put(s)
	res, err := Compute(context.Background(), h.idx, e, nil, Options{ComputedBy: "test"})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(res) != 1 {
		h.t.Fatalf("Compute returned %d results, want 1", len(res))
	}
	raw, _ := json.Marshal(res[0].Predicate)
	if _, err := attest.ParseRedFlags(raw); err != nil {
		h.t.Fatalf("Compute made a predicate ParseRedFlags refuses: %v", err)
	}
	return res[0].Predicate.Flags
}

func kinds(fs []attest.RedFlag) []string {
	var out []string
	for _, f := range fs {
		if len(out) == 0 || out[len(out)-1] != f.Kind {
			out = append(out, f.Kind)
		}
	}
	return out
}

// TestOrdinaryHistoryNoFlags: 200 ordinary builds with natural timing
// noise (log-normal jitter, cold caches) and hours give no flag at all.
func TestOrdinaryHistoryNoFlags(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		h := newHistory(t, seed)
		for i := 0; i < 200; i++ {
			if fs := h.flags(h.ordinary()); len(fs) > 0 {
				t.Fatalf("seed %d, build %d: ordinary build flagged: %+v", seed, i, fs)
			}
		}
	}
}

// TestRedFlags: after 40 ordinary builds, each unusual build gets its
// flag, and nothing else.
func TestRedFlags(t *testing.T) {
	evilDeps := ordinaryDeps()
	evilDeps["pkg:golang/github.com/evil/exfil@v0.0.1"] = strings.Repeat("dd", 32)
	bumped := ordinaryDeps()
	delete(bumped, "pkg:golang/golang.org/x/sys@v0.38.0")
	bumped["pkg:golang/golang.org/x/sys@v0.39.0"] = strings.Repeat("ee", 32)
	tests := []struct {
		name   string
		change func(s *spec)
		want   []string
	}{
		{"ordinary rebuild", func(s *spec) {}, nil},
		{"new dependency", func(s *spec) { s.deps = evilDeps }, []string{KindNewDependency, KindDependencyAdded}},
		{"dependency bumped", func(s *spec) { s.deps = bumped }, []string{KindDependencyChanged}},
		{"builder changed", func(s *spec) { s.builder = "https://evil.example/builder@v1" }, []string{KindBuilderChanged}},
		{"new builder key", func(s *spec) { s.key = strings.Repeat("99", 32) }, []string{KindNewBuilderKey}},
		{"fork", func(s *spec) { s.source = "git+https://github.com/attacker/app" }, []string{KindNewSource}},
		{"feature branch", func(s *spec) { s.ref = "refs/heads/wip" }, []string{KindNonReleaseRef}},
		{"toolchain upgrade", func(s *spec) { s.toolchain = "go1.26.9 linux/amd64" }, []string{KindToolchainChanged}},
		{"toolchain downgrade", func(s *spec) { s.toolchain = "go1.25.1 linux/amd64" }, []string{KindToolchainDowngrade}},
		{"unpinned", func(s *spec) {
			s.unpinned = []attest.Pinning{{Kind: "docker-from", File: "Dockerfile", Detail: "FROM alpine:latest"}}
		}, []string{KindNewlyUnpinned}},
		{"ten times slower", func(s *spec) { s.duration *= 10 }, []string{KindDuration}},
		{"at three in the morning", func(s *spec) {
			s.at = time.Date(s.at.Year(), s.at.Month(), s.at.Day(), 3, 10, 0, 0, time.UTC)
		}, []string{KindUnusualHour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t, 7)
			for i := 0; i < 40; i++ {
				h.put(h.ordinary())
			}
			s := h.ordinary()
			tt.change(&s)
			fs := h.flags(s)
			if got := kinds(fs); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("flags %v, want %v: %+v", got, tt.want, fs)
			}
			for _, f := range fs {
				if f.Message == "" || f.Clear == "" {
					t.Errorf("flag %s has no message or no clear: %+v", f.Kind, f)
				}
			}
		})
	}
}

// TestDurationMessage: the finding states the numbers it was judged on.
func TestDurationMessage(t *testing.T) {
	h := newHistory(t, 9)
	for i := 0; i < 40; i++ {
		h.put(h.ordinary())
	}
	s := h.ordinary()
	s.duration = 41 * time.Second
	fs := h.flags(s)
	if len(fs) != 1 || !strings.HasPrefix(fs[0].Message, "built in 41s; the last 30 builds took ") {
		t.Fatalf("flags %+v", fs)
	}
}

// TestBaselineSpoofing: a builder that floods its history with tiny builds
// to move the baseline gets each of them flagged as too short, and a slow
// build after ten of them is still flagged: the median moves only when
// half the window does.
func TestBaselineSpoofing(t *testing.T) {
	h := newHistory(t, 11)
	for i := 0; i < 40; i++ {
		h.put(h.ordinary())
	}
	s := h.ordinary()
	s.duration = 100 * time.Millisecond
	if got := kinds(h.flags(s)); len(got) != 1 || got[0] != KindDuration {
		t.Fatalf("tiny build: flags %v", got)
	}
	for i := 0; i < 9; i++ {
		s := h.ordinary()
		s.duration = 100 * time.Millisecond
		h.put(s)
	}
	s = h.ordinary()
	s.duration = 80 * time.Second
	if got := kinds(h.flags(s)); len(got) != 1 || got[0] != KindDuration {
		t.Fatalf("slow build after spoofing: flags %v", got)
	}
}

// TestFirstBuild: nothing to compare with, no flags, a note says so.
func TestFirstBuild(t *testing.T) {
	h := newHistory(t, 1)
	e := h.put(h.ordinary())
	res, err := Compute(context.Background(), h.idx, e, nil, Options{ComputedBy: "test"})
	if err != nil || len(res) != 1 || len(res[0].Predicate.Flags) != 0 || len(res[0].Predicate.Notes) != 1 {
		t.Fatalf("first build: %v %+v", err, res)
	}
}

// TestUnverifiedHistoryIgnored: records the index does not attribute
// (pushed with an unknown signer) are not history: a fork build after
// only unverified "history" from the fork is still a new source.
func TestUnverifiedHistoryIgnored(t *testing.T) {
	h := newHistory(t, 3)
	for i := 0; i < 10; i++ {
		h.put(h.ordinary())
	}
	for i := 0; i < 5; i++ {
		s := h.ordinary()
		s.source = "git+https://github.com/attacker/app"
		e := s.evidence(t)
		e.SignerKeyID = "" // stored unverified
		e.SourceURI, e.BuilderID, e.BuildID, e.SourceCommit = "", "", "", ""
		if _, _, err := h.idx.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	s := h.ordinary()
	s.source = "git+https://github.com/attacker/app"
	if got := kinds(h.flags(s)); len(got) != 1 || got[0] != KindNewSource {
		t.Fatalf("flags %v", got)
	}
}

// TestDependencyCap: a build listing more than MaxDependencies is flagged
// as not fully compared, and its flags stay bounded.
func TestDependencyCap(t *testing.T) {
	h := newHistory(t, 5)
	for i := 0; i < 10; i++ {
		h.put(h.ordinary())
	}
	s := h.ordinary()
	s.deps = map[string]string{}
	for i := 0; i < MaxDependencies+10; i++ {
		s.deps[fmt.Sprintf("pkg:golang/example.com/m%05d@v1.0.0", i)] = strings.Repeat("ab", 32)
	}
	fs := h.flags(s)
	count := map[string]int{}
	for _, f := range fs {
		count[f.Kind]++
	}
	if count[KindDependenciesUnchecked] != 1 || count[KindNewDependency] != maxPerKind+1 || count[KindDependencyAdded] != maxPerKind+1 {
		t.Fatalf("flag counts %v", count)
	}
}

// TestCacheSameFlags: with a Cache (as custody serve computes), a history
// with a change now and then gets exactly the flags it gets without one.
func TestCacheSameFlags(t *testing.T) {
	h := newHistory(t, 13)
	cache := NewCache(16) // smaller than the window: entries are dropped too
	for i := range 60 {
		s := h.ordinary()
		switch i % 10 {
		case 7:
			s.builder = "https://evil.example/builder@v1"
		case 9:
			s.duration *= 10
		}
		e := h.put(s)
		var got [2]string
		for j, c := range []*Cache{nil, cache} {
			res, err := Compute(context.Background(), h.idx, e, nil, Options{ComputedBy: "test", Cache: c,
				Now: func() time.Time { return time.Unix(0, 0) }})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(res[0].Predicate)
			got[j] = string(b)
		}
		if got[0] != got[1] {
			t.Fatalf("build %d: without a cache %s, with one %s", i, got[0], got[1])
		}
	}
}
