// Package store is the registry index of custody serve: every Sigstore bundle
// (https://github.com/sigstore/protobuf-specs, bundle v0.3) the server signs or
// receives is recorded with the facts needed to find it again: subject
// digests, predicate type, signer, builder, source and log position.
//
// Three backends hold it: [SQLite] (embedded, one file in the data
// directory), [Postgres] (scale-out) and [Memory] (tests: in memory, with
// fault hooks). They have the same methods, documented on [SQLite], and pass
// the same conformance suite in package storetest. The package declares no
// interface: each consumer declares the few methods it uses (server.Index,
// dashboard.Index, storetest.Store).
//
// Besides evidence it holds environments' deployment history ([Deployment]
// records, schema version 2), incident records ([IncidentRecord], schema
// version 4: incidents opened, artifacts quarantined, reports, closings)
// and first seen (schema version 5: the first provenance record of each
// subject name and builder, key or signing identity; see FirstSeen).
//
// The index is append-only. Nothing is ever updated or deleted; a change of
// state is a new record. The code issues no UPDATE or DELETE statements and the
// schema installs triggers that reject them, so a mistaken UPDATE or DELETE
// through raw SQL fails too.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custody-dev/custody/internal/api"
)

// Limits on what Put accepts. Evidence beyond them is rejected with
// [ErrInvalid] before anything is written.
const (
	// MaxBundleSize is the largest bundle, in bytes, the index stores.
	MaxBundleSize = 16 << 20
	// MaxDigests is the largest number of subject digests (summed over all
	// subjects) one piece of evidence may carry.
	MaxDigests = 10000
	// MaxFieldLen is the longest string field (subject name, identity,
	// URI, ...) in bytes.
	MaxFieldLen = 4096
)

// Query limits.
const (
	// DefaultLimit is the page size when Query.Limit is zero.
	DefaultLimit = api.DefaultLimit
	// MaxLimit is the largest page; a larger Query.Limit is lowered to it.
	MaxLimit = api.MaxLimit
)

// Errors returned by every backend; check them with errors.Is.
var (
	// ErrNotFound means no evidence has the requested ID. An HTTP server
	// answers 404.
	ErrNotFound = errors.New("evidence not found")
	// ErrInvalid means Put rejected the evidence (too large, malformed
	// digest, bundle that is not JSON, ...); the wrapping error says which
	// field. Nothing was stored. An HTTP server answers 400.
	ErrInvalid = errors.New("invalid evidence")
	// ErrInvalidQuery means Search rejected the query; the wrapping error
	// says why. An HTTP server answers 400.
	ErrInvalidQuery = errors.New("invalid query")
)

// Evidence is one indexed Sigstore bundle and the facts extracted from it.
type Evidence struct {
	// ID is assigned by the store. IDs increase in the order records become
	// visible, so a reader that pages with Query.AfterID never misses one.
	ID int64
	// BundleSHA256 is the lowercase hex SHA-256 of Bundle. Put computes it
	// when empty and rejects a value that does not match. It is unique: a
	// second Put of the same bundle returns the first record's ID.
	BundleSHA256 string
	// Bundle is the Sigstore bundle JSON as received (required, at most
	// MaxBundleSize bytes).
	Bundle []byte
	// Subjects are the statement's subjects; at least one, each with at
	// least one digest. An artifact may be listed under several digests.
	Subjects []Subject
	// PredicateType is the in-toto predicate type URI.
	PredicateType string
	// SignerKeyID is the lowercase hex SHA-256 of the signer's PKIX public
	// key, for key-signed bundles.
	SignerKeyID string
	// SignerIdentity is the certificate SAN, for keyless bundles.
	SignerIdentity string
	// SignerIssuer is the OIDC issuer of the keyless certificate.
	SignerIssuer string
	// BuilderID is the SLSA builder.id.
	BuilderID string
	// SourceURI is the source repository the artifact was built from.
	SourceURI string
	// SourceCommit is the source revision (usually a git commit).
	SourceCommit string
	// BuildID is the builder's invocation or build ID.
	BuildID string
	// LogIndex is the transparency log index, -1 when not logged.
	LogIndex int64
	// IntegratedTime is the log integration or trusted timestamp time, zero
	// when there is none. It is stored in UTC with microsecond precision.
	IntegratedTime time.Time
	// IndexedAt is when the store recorded the evidence (set by the store,
	// UTC, microsecond precision; ignored by Put).
	IndexedAt time.Time
}

// Subject is an artifact named by a statement: its name and its digests
// (algorithm -> value, e.g. "sha256" -> lowercase hex).
type Subject struct {
	Name    string
	Digests map[string]string
}

// Query selects evidence. Every non-zero field is a condition and all
// conditions must hold. Results are ordered by ID.
type Query struct {
	// Digest is "alg:value", e.g. "sha256:9f86d0...". Hex values match
	// case-insensitively.
	Digest string
	// SubjectName matches a subject's name exactly. With Digest, both must
	// hold for the same subject.
	SubjectName string
	// The remaining string fields match the Evidence field exactly.
	PredicateType  string
	SignerKeyID    string
	SignerIdentity string
	BuilderID      string
	SourceURI      string
	SourceCommit   string
	BuildID        string
	// ExcludePredicateTypes leaves out evidence of these predicate types
	// (at most MaxExcludedTypes), e.g. the decisions (VSAs) and audit
	// entries about an artifact when collecting the evidence that decides.
	ExcludePredicateTypes []string
	// Since (inclusive) and Until (exclusive) bound the evidence time: its
	// IntegratedTime, or its IndexedAt when IntegratedTime is zero.
	Since, Until time.Time
	// AfterID returns only evidence with a larger ID: pass the last ID of
	// one page to get the next.
	AfterID int64
	// BeforeID, when positive, returns only evidence with a smaller ID.
	BeforeID int64
	// Newest orders the results by decreasing ID (newest first), so that a
	// page of Limit holds the newest matches: the history of a lineage
	// without reading it all. Page on with BeforeID = the last ID.
	Newest bool
	// Limit is the page size: DefaultLimit when zero, at most MaxLimit
	// (larger values are lowered to it), never negative.
	Limit int
	// MaxBytes, when positive, also ends the page at the record whose
	// bundle brings the bundles' total to MaxBytes or more (the page holds
	// at least one record), so that a page of large bundles holds about
	// MaxBytes plus one bundle. Records past it are not read.
	MaxBytes int64
}

// minTime and maxTime bound the times the store accepts. minTime is one
// microsecond after the Unix epoch: the epoch itself is stored as 0, which
// toMicros reserves for the zero time.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// toMicros converts a time to the stored form: Unix microseconds, 0 for the
// zero time.
func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of toMicros.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// record is validated, normalised evidence ready to be written.
type record struct {
	e       Evidence
	digests []digestRow
}

// digestRow is one (subject, digest) pair as stored.
type digestRow struct {
	position int
	name     string
	alg      string
	value    string
}

// normalize validates e and returns the record to store.
func normalize(e *Evidence) (*record, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil evidence", ErrInvalid)
	}
	r := &record{e: *e}
	n := &r.e
	if len(n.Bundle) == 0 {
		return nil, fmt.Errorf("%w: empty bundle", ErrInvalid)
	}
	if len(n.Bundle) > MaxBundleSize {
		return nil, fmt.Errorf("%w: bundle is %d bytes, more than the limit of %d", ErrInvalid, len(n.Bundle), MaxBundleSize)
	}
	if !json.Valid(n.Bundle) {
		return nil, fmt.Errorf("%w: bundle is not valid JSON", ErrInvalid)
	}
	sum := sha256.Sum256(n.Bundle)
	got := hex.EncodeToString(sum[:])
	if n.BundleSHA256 == "" {
		n.BundleSHA256 = got
	} else if strings.ToLower(n.BundleSHA256) != got {
		return nil, fmt.Errorf("%w: bundle sha256 %q does not match the bundle bytes (%s)", ErrInvalid, n.BundleSHA256, got)
	} else {
		n.BundleSHA256 = got
	}
	if n.SignerKeyID != "" {
		k := strings.ToLower(n.SignerKeyID)
		if !isHex(k) || len(k) != 64 {
			return nil, fmt.Errorf("%w: signer key id %q is not a hex sha256", ErrInvalid, n.SignerKeyID)
		}
		n.SignerKeyID = k
	}
	fields := []struct{ name, v string }{
		{"predicate type", n.PredicateType},
		{"signer identity", n.SignerIdentity},
		{"signer issuer", n.SignerIssuer},
		{"builder id", n.BuilderID},
		{"source uri", n.SourceURI},
		{"source commit", n.SourceCommit},
		{"build id", n.BuildID},
	}
	for _, f := range fields {
		if err := checkText(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if n.LogIndex < -1 {
		return nil, fmt.Errorf("%w: log index %d is negative (use -1 when not logged)", ErrInvalid, n.LogIndex)
	}
	if !n.IntegratedTime.IsZero() {
		if n.IntegratedTime.Before(minTime) || n.IntegratedTime.After(maxTime) {
			return nil, fmt.Errorf("%w: integrated time %s is out of range", ErrInvalid, n.IntegratedTime.Format(time.RFC3339))
		}
		n.IntegratedTime = n.IntegratedTime.UTC().Truncate(time.Microsecond)
	}
	n.IndexedAt = time.Time{}
	n.ID = 0

	if len(n.Subjects) == 0 {
		return nil, fmt.Errorf("%w: no subjects", ErrInvalid)
	}
	subjects := make([]Subject, len(n.Subjects))
	for i, s := range n.Subjects {
		if err := checkText(fmt.Sprintf("subject %d name", i), s.Name); err != nil {
			return nil, err
		}
		if len(s.Digests) == 0 {
			return nil, fmt.Errorf("%w: subject %d (%q) has no digests", ErrInvalid, i, s.Name)
		}
		ds := make(map[string]string, len(s.Digests))
		for alg, v := range s.Digests {
			alg, v, err := normalizeDigest(alg, v)
			if err != nil {
				return nil, fmt.Errorf("%w: subject %d (%q): %w", ErrInvalid, i, s.Name, err)
			}
			if _, dup := ds[alg]; dup {
				return nil, fmt.Errorf("%w: subject %d (%q) lists %s twice", ErrInvalid, i, s.Name, alg)
			}
			ds[alg] = v
			r.digests = append(r.digests, digestRow{position: i, name: s.Name, alg: alg, value: v})
			if len(r.digests) > MaxDigests {
				return nil, fmt.Errorf("%w: more than %d subject digests", ErrInvalid, MaxDigests)
			}
		}
		subjects[i] = Subject{Name: s.Name, Digests: ds}
	}
	n.Subjects = subjects
	return r, nil
}

// normalizeDigest checks one digest and returns it in stored form: the
// algorithm as given and hex values in lowercase.
func normalizeDigest(alg, v string) (string, string, error) {
	if alg == "" || len(alg) > 64 {
		return "", "", fmt.Errorf("digest algorithm %q must be 1 to 64 bytes", alg)
	}
	for _, c := range alg {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", "", fmt.Errorf("digest algorithm %q has a character other than letters, digits, '-', '_' and '.'", alg)
		}
	}
	if v == "" || len(v) > 1024 {
		return "", "", fmt.Errorf("%s digest must be 1 to 1024 bytes", alg)
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return "", "", fmt.Errorf("%s digest %q has a space, control or non-ASCII character", alg, v)
		}
	}
	if isHex(v) {
		v = strings.ToLower(v)
	}
	return alg, v, nil
}

// checkText rejects strings the backends cannot store faithfully.
func checkText(field, v string) error {
	if len(v) > MaxFieldLen {
		return fmt.Errorf("%w: %s is %d bytes, more than the limit of %d", ErrInvalid, field, len(v), MaxFieldLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, field)
	}
	return nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// query is a validated, normalised Query.
type query struct {
	Query
	alg, value string
}

// MaxExcludedTypes bounds Query.ExcludePredicateTypes.
const MaxExcludedTypes = 8

// normalizeQuery validates q, applies the default limit and lowercases hex.
func normalizeQuery(q Query) (*query, error) {
	n := &query{Query: q}
	if q.Digest != "" {
		alg, v, ok := strings.Cut(q.Digest, ":")
		if !ok {
			return nil, fmt.Errorf("%w: digest %q is not of the form alg:value", ErrInvalidQuery, q.Digest)
		}
		alg, v, err := normalizeDigest(alg, v)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidQuery, err)
		}
		n.alg, n.value = alg, v
	}
	n.SignerKeyID = strings.ToLower(q.SignerKeyID)
	switch {
	case q.Limit < 0:
		return nil, fmt.Errorf("%w: negative limit %d", ErrInvalidQuery, q.Limit)
	case q.Limit == 0:
		n.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		n.Limit = MaxLimit
	}
	if q.AfterID < 0 || q.BeforeID < 0 {
		return nil, fmt.Errorf("%w: negative after or before id", ErrInvalidQuery)
	}
	if len(q.ExcludePredicateTypes) > MaxExcludedTypes {
		return nil, fmt.Errorf("%w: more than %d excluded predicate types", ErrInvalidQuery, MaxExcludedTypes)
	}
	for _, t := range q.ExcludePredicateTypes {
		if t == "" || len(t) > 1024 {
			return nil, fmt.Errorf("%w: an excluded predicate type is empty or longer than 1024 bytes", ErrInvalidQuery)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.After(q.Until) {
		return nil, fmt.Errorf("%w: since %s is after until %s", ErrInvalidQuery, q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	}
	return n, nil
}
