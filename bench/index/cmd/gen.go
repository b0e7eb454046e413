package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// The synthetic corpus. Record n (0 <= n < N) is a pure function of n and N,
// so a filled database can be reused and queried without reading it first.
//
// Distributions (at N = 1,000,000):
//   - 60% SLSA provenance bundles, each naming 1–3 new artifacts (sha256);
//     40% further evidence (SBOM 20%, vulnerability scan 15%, test results
//     5%) about the artifacts of a provenance bundle among the previous ~20
//     records, so a digest lookup returns 1 to a few records (≈1.7 on average).
//   - 1,000 signer keys: 20% of bundles come from 10 busy CI keys (≈20,800
//     bundles each), 80% are spread evenly over all 1,000 (≈800 each).
//   - 50 builders (half the provenance on 5 big ones), 100,000 commits in
//     time order across 2,000 repositories (≈6 provenance bundles per commit).
//   - Integration times every 30 s from 2025-01-01 (≈347 days at 1M), IDs in
//     time order; one unique build ID and log index per bundle.
//   - Bundles ≈1.1 KB: a Sigstore bundle v0.3 shape with a DSSE envelope whose
//     payload is the base64 in-toto statement.
const (
	nKeys     = 1000
	busyKeys  = 10
	nBuilders = 50
	bigBuild  = 5
	nCommits  = 100_000
	nRepos    = 2000
	timeStep  = 30 * time.Second
	lookback  = 20
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type kind int

const (
	kProvenance kind = iota
	kSBOM
	kVuln
	kTest
)

var predicateTypes = [...]string{
	kProvenance: "https://slsa.dev/provenance/v1",
	kSBOM:       "https://cyclonedx.org/bom",
	kVuln:       "https://in-toto.io/attestation/vulns/v0.2",
	kTest:       "https://in-toto.io/attestation/test-result/v0.1",
}

// mix is splitmix64: a cheap, well-spread hash of n and a salt.
func mix(n, salt uint64) uint64 {
	z := n*0x9e3779b97f4a7c15 + salt*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func rawKind(n int) kind {
	switch h := mix(uint64(n), 1) % 100; {
	case h < 60:
		return kProvenance
	case h < 80:
		return kSBOM
	case h < 95:
		return kVuln
	default:
		return kTest
	}
}

// provenanceOf returns the provenance record whose artifacts record n is
// about (n itself for provenance).
func provenanceOf(n int) int {
	if rawKind(n) == kProvenance {
		return n
	}
	p := n - 1 - int(mix(uint64(n), 2)%lookback)
	for p >= 0 && rawKind(p) != kProvenance {
		p--
	}
	if p < 0 {
		return n // the first records of the corpus are all provenance
	}
	return p
}

func kindOf(n int) kind {
	if provenanceOf(n) == n {
		return kProvenance
	}
	return rawKind(n)
}

func hexSum(parts ...any) string {
	sum := sha256.Sum256(fmt.Append(nil, parts...))
	return hex.EncodeToString(sum[:])
}

// keyID returns signer key k's ID (hex SHA-256, as the store wants).
func keyID(k int) string { return hexSum("key/", k) }

func keyOf(n int) int {
	if mix(uint64(n), 3)%100 < 20 {
		return int(mix(uint64(n), 4) % busyKeys)
	}
	return int(mix(uint64(n), 4) % nKeys)
}

func builderOf(n int) string {
	b := int(mix(uint64(n), 5) % nBuilders)
	if mix(uint64(n), 6)%2 == 0 {
		b = int(mix(uint64(n), 5) % bigBuild)
	}
	return fmt.Sprintf("https://ci.example.com/builders/runner-%02d@v1", b)
}

// commitOf spreads 100,000 commits over the corpus in time order.
func commitOf(n, total int) int {
	c := int(int64(n)*nCommits/int64(total)) + int(mix(uint64(n), 7)%3) - 1
	return max(0, min(nCommits-1, c))
}

func commitHash(c int) string { return hexSum("commit/", c)[:40] }

func repoOf(c int) string {
	return fmt.Sprintf("git+https://git.example.com/org%02d/service-%04d", mix(uint64(c), 8)%40, mix(uint64(c), 8)%nRepos)
}

// subjectsOf returns the number of artifacts provenance record p names.
func subjectsOf(p int) int { return 1 + int(mix(uint64(p), 9)%3) }

func artifactDigest(p, i int) string { return hexSum("artifact/", p, "/", i) }

func timeOf(n int) time.Time {
	return t0.Add(time.Duration(n)*timeStep + time.Duration(mix(uint64(n), 10)%29_000_000)*time.Microsecond)
}

// evidence builds record n of a corpus of total records.
func evidence(n, total int) *store.Evidence {
	p := provenanceOf(n)
	k := kindOf(n)
	c := commitOf(p, total)
	ns := subjectsOf(p)
	e := &store.Evidence{
		PredicateType:  predicateTypes[k],
		SignerKeyID:    keyID(keyOf(n)),
		SourceURI:      repoOf(c),
		SourceCommit:   commitHash(c),
		BuildID:        fmt.Sprintf("%s-%d", hexSum("build/", n)[:32], n),
		LogIndex:       int64(n),
		IntegratedTime: timeOf(n),
	}
	if k == kProvenance {
		e.BuilderID = builderOf(n)
	}
	for i := range ns {
		name := fmt.Sprintf("%s/app-%d-%s.tar.gz", e.SourceURI[len("git+https://"):], i, e.SourceCommit[:8])
		e.Subjects = append(e.Subjects, store.Subject{Name: name, Digests: map[string]string{"sha256": artifactDigest(p, i)}})
	}
	e.Bundle = bundle(n, e)
	return e
}

// bundle returns a Sigstore-bundle-shaped JSON document for e.
func bundle(n int, e *store.Evidence) []byte {
	var subj []byte
	for i, s := range e.Subjects {
		if i > 0 {
			subj = append(subj, ',')
		}
		subj = fmt.Appendf(subj, `{"name":%q,"digest":{"sha256":%q}}`, s.Name, s.Digests["sha256"])
	}
	stmt := fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[%s],"predicateType":%q,`+
		`"predicate":{"buildDefinition":{"externalParameters":{"source":{"uri":%q,"commit":%q}}},"runDetails":{"builder":{"id":%q},"metadata":{"invocationId":%q}}}}`,
		subj, e.PredicateType, e.SourceURI, e.SourceCommit, e.BuilderID, e.BuildID)
	sig := sha256.Sum256(fmt.Append(nil, "sig/", n))
	sig2 := sha256.Sum256(sig[:])
	return fmt.Appendf(nil, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",`+
		`"verificationMaterial":{"publicKey":{"hint":%q},"tlogEntries":[{"logIndex":"%d","integratedTime":"%d"}]},`+
		`"dsseEnvelope":{"payload":%q,"payloadType":"application/vnd.in-toto+json","signatures":[{"sig":%q}]}}`,
		e.SignerKeyID, e.LogIndex, e.IntegratedTime.Unix(),
		base64.StdEncoding.EncodeToString(stmt), base64.StdEncoding.EncodeToString(append(sig[:], sig2[:8]...)))
}
