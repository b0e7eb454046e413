package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// benchRecords is the size of the index the search benchmarks run on.
const benchRecords = 100_000

// benchRecent is the integration time of record benchRecords-5000: the
// Since of the "-since" searches.
var benchRecent = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(benchRecords-5000) * time.Minute)

// benchEvidence returns record n of the benchmark index: two subjects with
// unique digests, one of 100 keys, one of 1000 commits, one of 10 builders.
func benchEvidence(n int) *store.Evidence {
	e := storetest.Evidence(n)
	e.Bundle = fmt.Appendf(nil, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"%s"}},"dsseEnvelope":{"payload":"%064d","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"%0128d"}]}}`, storetest.Key(fmt.Sprint(n%100)), n, n)
	e.Subjects = []store.Subject{
		{Name: fmt.Sprintf("app-%d", n), Digests: map[string]string{"sha256": storetest.Digest(fmt.Sprint(n))}},
		{Name: fmt.Sprintf("app-%d.sbom", n), Digests: map[string]string{"sha256": storetest.Digest(fmt.Sprint("sbom", n))}},
	}
	e.SignerKeyID = storetest.Key(fmt.Sprint(n % 100))
	e.SourceCommit = fmt.Sprintf("%040x", n%1000)
	e.BuilderID = fmt.Sprintf("https://builder.example/%d", n%10)
	e.IntegratedTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
	return e
}

// BenchmarkSearch measures searches on an index of benchRecords records.
// Loading it takes a while (about a minute for PostgreSQL); run with
//
//	go test -run '^$' -bench Search -benchtime 300x ./internal/store/
//
// Measured 2026-11 on 2 shared AMD EPYC cores (load average about 8), per
// search; "key" and "commit" return a full page of 100 records with bundles:
//
//	            digest  key     key-since  commit  builder-page(10)  put
//	SQLite      0.39ms  3.1ms   7.3ms      1.8ms   0.26ms            1.4ms
//	PostgreSQL  0.57ms  3.5ms   4.3ms      3.2ms   1.0ms             1.8ms
//
// Loading the 100,000 records took 59 s (SQLite) and 88 s (PostgreSQL 15,
// fsync off). Before and after the statement cache and the (field, id,
// sort_us) indexes, see bench/index/README.md.
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			start := time.Now()
			const batch = 2000
			for i := 0; i < benchRecords; i += batch {
				es := make([]*store.Evidence, 0, batch)
				for n := i; n < i+batch && n < benchRecords; n++ {
					es = append(es, benchEvidence(n))
				}
				if err := store.PutBatch(ctx, s, es); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: loaded %d records in %v", be.name, benchRecords, time.Since(start).Round(time.Millisecond))

			queries := []struct {
				name string
				q    func(i int) store.Query
				want int
			}{
				{"digest", func(i int) store.Query {
					return store.Query{Digest: "sha256:" + storetest.Digest(fmt.Sprint((i*7919)%benchRecords))}
				}, 1},
				{"key", func(i int) store.Query {
					return store.Query{SignerKeyID: storetest.Key(fmt.Sprint(i % 100))}
				}, store.DefaultLimit},
				{"key-since", func(i int) store.Query {
					return store.Query{SignerKeyID: storetest.Key(fmt.Sprint(i % 100)), Since: benchRecent}
				}, 50},
				{"commit", func(i int) store.Query {
					return store.Query{SourceCommit: fmt.Sprintf("%040x", i%1000)}
				}, 100},
				// The last 5,000 minutes hold 5 of each commit's 100
				// records, 500 of each builder's 10,000, and 5,000 of the
				// predicate type's 100,000.
				{"commit-since", func(i int) store.Query {
					return store.Query{SourceCommit: fmt.Sprintf("%040x", i%1000), Since: benchRecent}
				}, 5},
				{"builder-since", func(i int) store.Query {
					return store.Query{BuilderID: fmt.Sprintf("https://builder.example/%d", i%10), Since: benchRecent}
				}, store.DefaultLimit},
				{"predicate-since", func(i int) store.Query {
					return store.Query{PredicateType: "https://slsa.dev/provenance/v1", Since: benchRecent, AfterID: int64(i % 50)}
				}, store.DefaultLimit},
				{"builder-page", func(i int) store.Query {
					return store.Query{BuilderID: fmt.Sprintf("https://builder.example/%d", i%10), AfterID: int64(i%50) * 1000, Limit: 10}
				}, 10},
			}
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					for i := 0; b.Loop(); i++ {
						res, err := s.Search(ctx, q.q(i))
						if err != nil {
							b.Fatal(err)
						}
						if len(res) != q.want {
							b.Fatalf("Search(%+v) returned %d records, want %d", q.q(i), len(res), q.want)
						}
					}
				})
			}
			b.Run("put", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if _, _, err := s.Put(ctx, benchEvidence(benchRecords+i)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
