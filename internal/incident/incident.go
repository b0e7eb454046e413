// Package incident is custody's kill-switch: when a signing key, a keyless
// identity or a builder is compromised since a time T, it finds every
// artifact with evidence (Sigstore bundles, https://github.com/sigstore/protobuf-specs)
// signed by it at or after T, quarantines those artifacts with append-only
// records (store.IncidentRecord) that the deploy gate (deploy.Gate.Quarantine)
// consults, and describes what was found, blocked and rolled back in a
// report.
//
// Placing a signature before T needs proof: an RFC 3161 timestamp
// (https://www.rfc-editor.org/rfc/rfc3161) or a transparency-log entry that
// verifies against the trusted root given to Find. Evidence whose time is
// not proven that way counts as signed after T (fail closed).
package incident

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
)

// Selector names what was compromised: exactly one field is set.
type Selector struct {
	// KeyID is the lowercase hex SHA-256 of the signer's PKIX public key.
	KeyID string `json:"keyId,omitempty"`
	// Identity is a keyless signer's certificate identity (SAN), with
	// Issuer, its certificate's OIDC issuer: an identity means something
	// only with its issuer, and both must match.
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// Builder is the SLSA builder.id.
	Builder string `json:"builder,omitempty"`
}

// Validate reports a selector that names not exactly one thing.
func (s Selector) Validate() error {
	n := 0
	for _, v := range []string{s.KeyID, s.Identity, s.Builder} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("name exactly one of a key, an identity or a builder")
	}
	if (s.Identity != "") != (s.Issuer != "") {
		return errors.New("an identity goes with its OIDC issuer: name both")
	}
	if s.KeyID != "" && (len(s.KeyID) != 64 || strings.Trim(s.KeyID, "0123456789abcdef") != "") {
		return fmt.Errorf("key ID %q is not a lowercase hex SHA-256", s.KeyID)
	}
	return nil
}

// String names the selector for people.
func (s Selector) String() string {
	switch {
	case s.KeyID != "":
		return "key " + s.KeyID
	case s.Identity != "":
		return "identity " + s.Identity + " (issuer " + s.Issuer + ")"
	}
	return "builder " + s.Builder
}

// Query is the search (GET /api/v1/evidence) that finds the selector's
// evidence (at any time: Find decides about time itself).
func (s Selector) Query() api.Query {
	return api.Query{SignerKeyID: s.KeyID, SignerIdentity: s.Identity, BuilderID: s.Builder}
}

// Matches reports whether e was made by what s names.
func (s Selector) Matches(e *Evidence) bool {
	switch {
	case s.KeyID != "":
		return e.SignerKeyID == s.KeyID
	case s.Identity != "":
		return e.SignerIdentity == s.Identity && e.SignerIssuer == s.Issuer
	case s.Builder != "":
		return e.BuilderID == s.Builder
	}
	return false
}

// Evidence is one bundle as Find sees it: the index facts and, when the
// trusted root proved one, the earliest time the signature is known to
// have existed.
type Evidence struct {
	store.Evidence
	// Source names the bundle (file path, or server:ID).
	Source string
	// ProvenAt is the earliest verified RFC 3161 timestamp or log
	// integration time; zero when none was verified.
	ProvenAt time.Time
	// Proof says what proved ProvenAt ("rfc3161 timestamp", "log entry"),
	// or why nothing did.
	Proof string
}

// Hit is one piece of evidence that makes an artifact affected, or spares it.
type Hit struct {
	Source        string    `json:"source"`
	PredicateType string    `json:"predicateType"`
	ProvenAt      time.Time `json:"provenAt,omitzero"`
	Proof         string    `json:"proof"`
}

// Artifact is an artifact with evidence from the compromised signer.
type Artifact struct {
	Digest string   `json:"digest"`
	Names  []string `json:"names"`
	// Evidence is what places it at or after T (or leaves its time
	// unproven); for a spared artifact, the evidence proven before T.
	Evidence []Hit `json:"evidence"`
}

// Findings splits the selector's artifacts into affected (some evidence at
// or after T, or unproven) and spared (every piece proven before T).
type Findings struct {
	Affected []Artifact `json:"affected"`
	Spared   []Artifact `json:"spared"`
}

// Find classifies the evidence the selector matches (others are ignored).
// An artifact is affected when any of its matching evidence is not proven
// to be older than since.
func Find(evidence []*Evidence, sel Selector, since time.Time) *Findings {
	type acc struct {
		names         map[string]bool
		after, before []Hit
	}
	byDigest := map[string]*acc{}
	for _, e := range evidence {
		if !sel.Matches(e) {
			continue
		}
		h := Hit{Source: e.Source, PredicateType: e.PredicateType, ProvenAt: e.ProvenAt, Proof: e.Proof}
		for _, sub := range e.Subjects {
			v, ok := sub.Digests["sha256"]
			if !ok {
				continue
			}
			d := "sha256:" + strings.ToLower(v)
			a := byDigest[d]
			if a == nil {
				a = &acc{names: map[string]bool{}}
				byDigest[d] = a
			}
			if sub.Name != "" {
				a.names[sub.Name] = true
			}
			if !e.ProvenAt.IsZero() && e.ProvenAt.Before(since) {
				a.before = append(a.before, h)
			} else {
				a.after = append(a.after, h)
			}
		}
	}
	f := &Findings{Affected: []Artifact{}, Spared: []Artifact{}}
	for d, a := range byDigest {
		var names []string
		for n := range a.names {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(a.after) > 0 {
			f.Affected = append(f.Affected, Artifact{Digest: d, Names: names, Evidence: a.after})
		} else {
			f.Spared = append(f.Spared, Artifact{Digest: d, Names: names, Evidence: a.before})
		}
	}
	sort.Slice(f.Affected, func(i, j int) bool { return f.Affected[i].Digest < f.Affected[j].Digest })
	sort.Slice(f.Spared, func(i, j int) bool { return f.Spared[i].Digest < f.Spared[j].Digest })
	return f
}

// NewID returns a fresh incident ID for an incident opened at t.
func NewID(t time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("couldn't make an incident ID: %w", err)
	}
	return "INC-" + t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

// Quarantine answers deploy.Quarantine from a Ledger: an artifact is
// quarantined when any incident recorded it so (closed incidents too).
type Quarantine struct {
	Ledger Ledger
}

// Quarantined implements deploy.Quarantine.
func (q Quarantine) Quarantined(ctx context.Context, artifact string) (string, error) {
	rs, err := q.Ledger.List(ctx, store.IncidentQuery{Artifact: artifact, Event: store.IncidentQuarantined, Limit: 1})
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "", nil
	}
	return rs[0].Incident, nil
}
