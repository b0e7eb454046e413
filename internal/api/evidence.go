package api

import (
	"encoding/json"
	"time"

	"github.com/custody-dev/custody/attest"
)

// Page sizes of the list routes (evidence, deployments, incidents).
const (
	// DefaultLimit is the page size when a query asks for none.
	DefaultLimit = 100
	// MaxLimit is the largest page; a larger limit is lowered to it.
	MaxLimit = 1000
)

// Evidence is one indexed Sigstore bundle and the facts the server took
// from it: one record of GET /api/v1/evidence.
type Evidence struct {
	ID             int64            `json:"id"`
	BundleSHA256   string           `json:"bundleSha256"`
	Subjects       []attest.Subject `json:"subjects"`
	PredicateType  string           `json:"predicateType"`
	SignerKeyID    string           `json:"signerKeyId,omitempty"`
	SignerIdentity string           `json:"signerIdentity,omitempty"`
	SignerIssuer   string           `json:"signerIssuer,omitempty"`
	BuilderID      string           `json:"builderId,omitempty"`
	SourceURI      string           `json:"sourceUri,omitempty"`
	SourceCommit   string           `json:"sourceCommit,omitempty"`
	BuildID        string           `json:"buildId,omitempty"`
	// LogIndex is the index in the server's transparency log, -1 when the
	// bundle is not in it.
	LogIndex int64 `json:"logIndex"`
	// IntegratedTime is the time a trusted log or timestamp authority
	// proved; zero (omitted) when there is none.
	IntegratedTime time.Time `json:"integratedTime,omitzero"`
	IndexedAt      time.Time `json:"indexedAt"`
	// Verified says the server verified the bundle against a key or CA it
	// trusts when it indexed it: only then does the record name a signer
	// (SignerKeyID or SignerIdentity), a log index and a time, and carry
	// the provenance's builder, source and build ID. An unverified record
	// holds the bundle as pushed, indexed by its subjects and predicate
	// type only; verify it yourself.
	Verified bool `json:"verified"`
	// Bundle is the Sigstore bundle JSON as stored. It is last: the server
	// writes the stored bytes in its place. The server always sends it;
	// it is omitted only where a record is printed without it.
	Bundle json.RawMessage `json:"bundle,omitempty"`
}

// When is the evidence time a query's Since and Until bound: its
// IntegratedTime, or IndexedAt when there is none.
func (e *Evidence) When() time.Time {
	if e.IntegratedTime.IsZero() {
		return e.IndexedAt
	}
	return e.IntegratedTime
}

// SearchResponse is the answer of GET /api/v1/evidence.
type SearchResponse struct {
	Evidence []Evidence `json:"evidence"`
	// Next, when not zero, is where the matches continue: ask again with
	// after=Next. It is set when the page holds limit records or ended
	// early at the server's byte cap; a client that wants limit records
	// follows it until it has them or Next is zero.
	Next int64 `json:"next,omitempty"`
}

// PushAnswer is the answer of POST /api/v1/evidence.
type PushAnswer struct {
	ID int64 `json:"id"`
	// Existed is true when the same bundle was stored before (ID is then
	// that record's).
	Existed bool `json:"existed"`
}

// SignRequest is the body of POST /api/v1/sign.
type SignRequest struct {
	Statement json.RawMessage `json:"statement"`
	// Key names the builder key; only admin tokens may choose it (builder
	// tokens sign with the key they are scoped to).
	Key string `json:"key,omitempty"`
}

// SignAnswer is the answer of POST /api/v1/sign.
type SignAnswer struct {
	// ID is the bundle's evidence ID in the index.
	ID     int64           `json:"id"`
	Bundle json.RawMessage `json:"bundle"`
}
