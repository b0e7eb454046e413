package pack

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/trust"
)

// AuditKeyNotGiven is why a red flags statement that verifies with the
// server's audit key was not counted: the decision trusts no such key.
// custody policy check says the same.
const AuditKeyNotGiven = "the audit key is not among --key (a policy's redFlags: section counts the statements of the key it names: " +
	"custody key public --name audit > audit.pub, then --key audit.pub)"

// RedFlagsSeen is a red flags statement of the pack (a custody server's
// findings about a build, signed with its audit key) that the decision
// did not count, because the device was not given the audit key: it is
// shown apart from the rejected bundles, verified against the audit key
// as the pack's trust has it (a packer key of the trust root, which is
// how a server's audit key signs packs, or a pinned pack key), as custody
// policy check shows the server's.
type RedFlagsSeen struct {
	// Bundle names it: bundle/NNNN in a pack (custody policy check: a
	// file, or "server:ID").
	Bundle string `json:"bundle"`
	// Verified is true when the server's audit key (AuditKey, found as
	// KeyFrom says) signed it and a log or TSA the trust names proved it.
	Verified bool   `json:"verified"`
	AuditKey string `json:"auditKey,omitempty"`
	KeyFrom  string `json:"keyFrom,omitempty"`
	// Flags are the kinds of the flags it holds (when Verified).
	Flags []string `json:"flags"`
	// Reason says why it did not verify, or why it was not counted.
	Reason string `json:"reason"`
}

// Where RedFlagsSeen.KeyFrom says the audit key came from.
const (
	keyFromTrustRoot = "the trust root (role packer)"
	keyFromPinned    = "the device's --pack-key (pinned)"
)

// redFlagsApart takes the red flags statements out of rej and verifies
// each against the audit keys the pack's trust names, with the trust
// root's logs and TSAs (not the pack's trusted root, which adds no trust).
func (o *Opened) redFlagsApart(ctx context.Context, rej []gate.Rejected) ([]gate.Rejected, []RedFlagsSeen) {
	kept, seen := []gate.Rejected{}, []RedFlagsSeen{}
	var audit root.TrustedMaterial
	var from map[string]string // key ID -> KeyFrom
	for _, r := range rej {
		b := o.Bundles[r.Index]
		if len(gate.OfPredicateType([]gate.Bundle{{JSON: b}}, attest.PredicateRedFlags)) == 0 {
			kept = append(kept, r)
			continue
		}
		if from == nil {
			audit, from = o.auditTrust()
		}
		s := RedFlagsSeen{Bundle: fmt.Sprintf("bundle/%04d", r.Index), Flags: []string{}}
		if audit == nil {
			s.Reason = "no audit key to verify it with: the trust root lists none with role packer, and no --pack-key is pinned"
			seen = append(seen, s)
			continue
		}
		ev, bad, err := gate.Gather(ctx, o.Artifact, [][]byte{b}, audit)
		switch {
		case err != nil:
			s.Reason = "does not verify with the server's audit key: " + err.Error()
		case len(bad) > 0:
			s.Reason = "does not verify with the server's audit key: " + bad[0].Reason
		case len(ev.RedFlagReports) != 1 || from[ev.RedFlagReports[0].Signer.KeyID] == "":
			s.Reason = "does not verify with the server's audit key: not signed by one"
		default:
			id := ev.RedFlagReports[0].Signer.KeyID
			s.Verified, s.AuditKey, s.KeyFrom, s.Reason = true, keyid.Display(id), from[id], AuditKeyNotGiven
			for _, f := range ev.RedFlagReports[0].Flags {
				s.Flags = append(s.Flags, f.Kind)
			}
		}
		seen = append(seen, s)
	}
	return kept, seen
}

// auditTrust is trust material of the audit keys the pack's trust names:
// the trust root's packer keys (their windows apply) and the pinned pack
// keys, with the trust root's logs and TSAs; from says where each key (by
// ID) came from. It returns a nil material when there is no such key.
func (o *Opened) auditTrust() (root.TrustedMaterial, map[string]string) {
	from := map[string]string{}
	packers := trust.Root{Tlogs: o.Root.Root.Tlogs, TSAs: o.Root.Root.TSAs}
	for _, k := range o.Root.Root.Keys {
		if k.Role != trust.RolePacker {
			continue
		}
		k.Role = trust.RoleBuilder // as the signer of red flags only, here
		packers.Keys = append(packers.Keys, k)
		if id, err := gate.KeyID(k.PublicKey); err == nil {
			from[id] = keyFromTrustRoot
		}
	}
	var tms root.TrustedMaterialCollection
	if len(packers.Keys) > 0 {
		if tm, err := packers.TrustedMaterial(); err == nil {
			tms = append(tms, tm)
		}
	}
	var pinned []crypto.PublicKey
	for _, k := range o.pinned {
		if id, err := gate.KeyID(k); err == nil && from[id] == "" {
			from[id] = keyFromPinned
			pinned = append(pinned, k)
		}
	}
	if len(pinned) > 0 {
		if km, err := gate.KeyMaterial(pinned...); err == nil {
			tms = append(tms, km)
		}
	}
	if len(from) == 0 {
		return nil, from
	}
	return tms, from
}

// WriteRedFlagsSeen writes the red flags statements a decision did not
// count, apart from everything else, each on one line (custody policy
// check and verify --pack alike).
func WriteRedFlagsSeen(w io.Writer, indent string, seen []RedFlagsSeen) {
	for _, r := range seen {
		if !r.Verified {
			fmt.Fprintf(w, "%sRED FLAGS %s: not verified: %s\n", indent, r.Bundle, r.Reason)
			continue
		}
		what := "no red flags"
		if len(r.Flags) > 0 {
			what = fmt.Sprintf("%d red flag(s): %s", len(r.Flags), strings.Join(r.Flags, ", "))
		}
		fmt.Fprintf(w, "%sRED FLAGS %s: %s; signed by the server's audit key %s from %s; not counted: %s\n",
			indent, r.Bundle, what, r.AuditKey, r.KeyFrom, r.Reason)
	}
}
