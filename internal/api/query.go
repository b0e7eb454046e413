package api

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Query selects evidence (GET /api/v1/evidence). Every non-zero field is a
// condition and all conditions must hold. Results are ordered by ID.
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
	// ExcludePredicateTypes leaves out evidence of these predicate types,
	// e.g. the decisions (VSAs) and audit entries about an artifact when
	// collecting the evidence that decides.
	ExcludePredicateTypes []string
	// Since (inclusive) and Until (exclusive) bound Evidence.When.
	Since, Until time.Time
	// AfterID returns only evidence with a larger ID: pass the last ID of
	// one page (or SearchResponse.Next) to get the next.
	AfterID int64
	// Limit is the page size: DefaultLimit when zero, at most MaxLimit
	// (larger values are lowered to it), never negative.
	Limit int
}

// Values encodes q as the query string of GET /api/v1/evidence.
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("digest", q.Digest)
	set("name", q.SubjectName)
	set("predicateType", q.PredicateType)
	set("signerKeyId", q.SignerKeyID)
	set("identity", q.SignerIdentity)
	set("builder", q.BuilderID)
	set("source", q.SourceURI)
	set("commit", q.SourceCommit)
	set("buildId", q.BuildID)
	if len(q.ExcludePredicateTypes) > 0 {
		v["notPredicateType"] = append([]string(nil), q.ExcludePredicateTypes...)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.AfterID != 0 {
		v.Set("after", strconv.FormatInt(q.AfterID, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ParseQuery decodes the query string of GET /api/v1/evidence. Its errors
// are one line, for a 400 answer.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Digest: v.Get("digest"), SubjectName: v.Get("name"), PredicateType: v.Get("predicateType"),
		SignerKeyID: v.Get("signerKeyId"), SignerIdentity: v.Get("identity"), BuilderID: v.Get("builder"),
		SourceURI: v.Get("source"), SourceCommit: v.Get("commit"), BuildID: v.Get("buildId"),
		ExcludePredicateTypes: v["notPredicateType"]}
	var err error
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(t.name); s != "" {
			if *t.dst, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return q, fmt.Errorf("%s is not an RFC 3339 time", t.name)
			}
		}
	}
	if s := v.Get("after"); s != "" {
		if q.AfterID, err = strconv.ParseInt(s, 10, 64); err != nil || q.AfterID < 0 {
			return q, errors.New("after is not an evidence ID")
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, errors.New("limit is not a non-negative number")
		}
	}
	return q, nil
}
