package pack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/trust"
)

// Manifest is the predicate of the manifest statement: what the packer
// vouches for, and the list of entries.
type Manifest struct {
	// Environment is the environment whose policy the pack carries.
	Environment string `json:"environment"`
	// Created is when the pack was made; Expires when it stops being
	// accepted (never after the trust root's expiry).
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// TrustRootVersion is the custody trust root version the pack was
	// made under (the newest trust-root/V entry).
	TrustRootVersion int `json:"trustRootVersion"`
	// PolicyDigest is the signed policy's digest (policy.Signed.Digest).
	PolicyDigest string `json:"policyDigest"`
	// Quarantine is what the packer found in the incident ledger.
	Quarantine Quarantine `json:"quarantine"`
	// Entries lists every entry of the pack.
	Entries []EntryRef `json:"entries"`
}

// Quarantine says whether the packer looked the artifact up in an incident
// ledger and what it found.
type Quarantine struct {
	// Checked is true when an incident ledger was consulted.
	Checked bool `json:"checked"`
	// Incident is the ID of an incident that quarantined the artifact.
	Incident string `json:"incident,omitempty"`
}

// Proof is a consistency proof from a bundle's checkpoint (of size From)
// to the pack's checkpoint of the same log.
type Proof struct {
	From   uint64
	Hashes [][]byte
}

// Contents is what Build puts in a pack.
type Contents struct {
	// Artifact is "sha256:HEX", the statement's subject.
	Artifact    string
	Environment string
	Created     time.Time
	// Expires: zero means Created + 7 days; always capped at the newest
	// trust root's expiry.
	Expires time.Time
	// Bundles are the evidence bundles, in order.
	Bundles [][]byte
	// TrustRoots is the custody trust root chain: signed documents of
	// consecutive versions, the newest last (at least one).
	TrustRoots []*trust.Document
	// TrustedRoot is a Sigstore trusted_root.json (logs, TSAs, CAs); may
	// be nil.
	TrustedRoot []byte
	// SignedPolicy is the environment's signed policy (policy.Signed
	// JSON); PolicyDigest its digest.
	SignedPolicy []byte
	PolicyDigest string
	// Checkpoints are signed checkpoint notes, one per log; Proofs[i] the
	// consistency proofs to Checkpoints[i].
	Checkpoints [][]byte
	Proofs      [][]Proof
	Quarantine  Quarantine
}

// SignFunc signs an in-toto statement and returns the Sigstore bundle
// (signer.SignStatement with the packer's key, or a server's signing).
type SignFunc func(ctx context.Context, statementJSON []byte) ([]byte, error)

// DefaultValidity is how long a pack is accepted when Contents.Expires is
// zero.
const DefaultValidity = 7 * 24 * time.Hour

var digestRe = lazyre.New(`^sha256:[0-9a-f]{64}$`)

// Build writes a pack of c, its manifest signed by sign.
func Build(ctx context.Context, c *Contents, sign SignFunc) ([]byte, error) {
	if !digestRe.MatchString(c.Artifact) {
		return nil, fmt.Errorf("artifact %q is not sha256:HEX", c.Artifact)
	}
	if len(c.TrustRoots) == 0 || len(c.SignedPolicy) == 0 {
		return nil, errors.New("a pack needs the trust root and the environment's signed policy")
	}
	if len(c.Checkpoints) == 0 {
		return nil, errors.New("no log checkpoint: a pack needs evidence logged in a transparency log (its rollback protection is the log's checkpoint)")
	}
	entries, err := c.entries()
	if err != nil {
		return nil, err
	}
	newest := c.TrustRoots[len(c.TrustRoots)-1]
	m := Manifest{Environment: c.Environment, Created: c.Created.UTC(), Expires: c.Expires,
		TrustRootVersion: newest.Version, PolicyDigest: c.PolicyDigest, Quarantine: c.Quarantine}
	if m.Expires.IsZero() {
		m.Expires = m.Created.Add(DefaultValidity)
	}
	if newest.Expires.Before(m.Expires) {
		m.Expires = newest.Expires
	}
	m.Expires = m.Expires.UTC()
	for _, e := range entries {
		m.Entries = append(m.Entries, refOf(e))
	}
	pred, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	st, err := json.Marshal(attest.Statement{Type: attest.StatementTypeV1, PredicateType: PredicateType, Predicate: pred,
		Subject: []attest.Subject{{Name: c.Artifact, Digest: map[string]string{"sha256": strings.TrimPrefix(c.Artifact, "sha256:")}}}})
	if err != nil {
		return nil, err
	}
	manifest, err := sign(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign the pack: %w", err)
	}
	return marshal(manifest, entries)
}

// entries names c's parts.
func (c *Contents) entries() ([]Entry, error) {
	var es []Entry
	if len(c.Bundles) > 9999 {
		return nil, fmt.Errorf("%d bundles, more than a pack holds", len(c.Bundles))
	}
	for i, b := range c.Bundles {
		es = append(es, Entry{Name: fmt.Sprintf("bundle/%04d", i), Content: b})
	}
	for _, d := range c.TrustRoots {
		b, err := d.Marshal()
		if err != nil {
			return nil, err
		}
		es = append(es, Entry{Name: fmt.Sprintf("trust-root/%d", d.Version), Content: b})
	}
	if len(c.TrustedRoot) > 0 {
		es = append(es, Entry{Name: "trusted-root.json", Content: c.TrustedRoot})
	}
	es = append(es, Entry{Name: "policy.signed.json", Content: c.SignedPolicy})
	if len(c.Checkpoints) > 100 {
		return nil, errors.New("more than 100 checkpoints")
	}
	for i, cp := range c.Checkpoints {
		es = append(es, Entry{Name: fmt.Sprintf("checkpoint/%d", i), Content: cp})
		if i >= len(c.Proofs) {
			continue
		}
		for _, p := range c.Proofs[i] {
			es = append(es, Entry{Name: fmt.Sprintf("consistency/%d/%d", i, p.From), Content: encodeProof(p.Hashes)})
		}
	}
	if len(es) > MaxEntries {
		return nil, fmt.Errorf("%d bundles make %d entries, more than the %d entries a device reads", len(c.Bundles), len(es), MaxEntries)
	}
	seen := map[string]bool{}
	for _, e := range es {
		if _, limit, ok := kindOf(e.Name); !ok || len(e.Content) == 0 || len(e.Content) > limit || seen[e.Name] {
			return nil, fmt.Errorf("entry %s: empty, too large, repeated or badly named", e.Name)
		}
		seen[e.Name] = true
	}
	sortEntries(es)
	return es, nil
}
