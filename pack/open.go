package pack

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

// Errors Open returns (wrapped) besides ErrMalformed and ErrCheckpoint;
// check them with errors.Is.
var (
	// ErrSignature: the manifest is not signed by a packer key of the
	// trust root (or a pinned pack key), or not about the artifact.
	ErrSignature = errors.New("pack signature refused")
	// ErrStale: the pack, its trust root or its policy's maxAge has
	// expired, or the pack claims to be made in the future.
	ErrStale = errors.New("stale pack")
	// ErrContents: entries the manifest does not list (or missing), a
	// trust root chain that does not follow from the device's, a policy
	// that is not the environment's admin-signed policy.
	ErrContents = errors.New("pack contents refused")
)

// MaxClockSkew is how far in the future a pack's creation time may be.
const MaxClockSkew = 5 * time.Minute

// Options is what Open checks a pack against.
type Options struct {
	// Artifact is the artifact's "sha256:HEX", computed by the device.
	Artifact string
	// Environment is where the artifact is to go.
	Environment string
	// Anchor is the custody trust root the device trusts. The pack's
	// trust root chain must follow from it (trust.UpdateChain).
	Anchor *trust.Document
	// PackKeys are pinned pack signers besides the trust root's packer
	// keys (e.g. a server's audit key).
	PackKeys []crypto.PublicKey
	// Now is the time of the decision (zero: time.Now()).
	Now time.Time
}

// Opened is a pack whose signature, entries, trust root chain, policy and
// checkpoints verified.
type Opened struct {
	Artifact string
	Manifest Manifest
	// Root is the trust root the pack verifies under: the anchor, or the
	// newer version the pack's chain leads to.
	Root   *trust.Document
	Policy *policy.Signed
	// TrustedRoot is the pack's Sigstore trusted root, or nil. It is
	// carried for the record and trusted for nothing: the device trusts
	// its trust root (and its own --trusted-root), never what a packer
	// adds.
	TrustedRoot []byte
	Bundles     [][]byte
	Checkpoints []*Checkpoint
	// Proven and Unproven count bundle checkpoints proven consistent with
	// the pack's checkpoint, and older ones the pack has no proof for.
	Proven, Unproven int
	// Signer is the key hint of the manifest's signer.
	Signer string

	pinned []crypto.PublicKey // Options.PackKeys
}

// Open verifies a pack for o.Artifact and o.Environment: Parse, then the
// trust root chain from o.Anchor, the manifest's signature by a packer key
// the resulting trust root lists (or a pinned key) and its subject, that
// the entries are exactly those the manifest lists, freshness (the pack's
// expiry, the trust root's expiry, the policy's maxAge since the pack was
// made), the signed policy (the admin threshold of the trust root, the
// environment, the manifest's digest) and the checkpoints (signed by a log
// the trust root names; bundle checkpoints not newer, consistent where proven).
// The device's rollback check (State.Check) comes after.
func Open(ctx context.Context, b []byte, o Options) (*Opened, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Anchor == nil {
		return nil, errors.New("no trust root to verify the pack under")
	}
	p, err := Parse(b)
	if err != nil {
		return nil, err
	}
	out := &Opened{Artifact: o.Artifact, pinned: o.PackKeys}
	if out.Root, err = rootChain(p, o.Anchor, o.Now); err != nil {
		return nil, err
	}
	if err := out.verifyManifest(ctx, p.Manifest, o); err != nil {
		return nil, err
	}
	if err := checkEntries(p, out.Manifest.Entries); err != nil {
		return nil, err
	}
	if err := out.checkFresh(o); err != nil {
		return nil, err
	}
	if err := out.readEntries(p, o.Now); err != nil {
		return nil, err
	}
	if err := out.checkFresh(o); err != nil { // the policy's maxAge
		return nil, err
	}
	return out, nil
}

// rootChain returns the trust root the pack's chain leads to from anchor:
// anchor itself when the pack has no newer version, else the newest after
// trust.UpdateChain. A version the anchor has must be the same document.
func rootChain(p *Pack, anchor *trust.Document, now time.Time) (*trust.Document, error) {
	var newer []*trust.Document
	for _, e := range p.Entries {
		if e.Kind() != KindTrustRoot {
			continue
		}
		d, err := trust.ParseDocument(e.Content)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrContents, e.Name, err)
		}
		if strconv.Itoa(d.Version) != strings.TrimPrefix(e.Name, "trust-root/") {
			return nil, fmt.Errorf("%w: %s holds version %d", ErrContents, e.Name, d.Version)
		}
		switch {
		case d.Version > anchor.Version:
			newer = append(newer, d)
		case d.Version == anchor.Version:
			a, err1 := anchor.Payload()
			b, err2 := d.Payload()
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				return nil, fmt.Errorf("%w: %s differs from the trusted version %d: %w", ErrContents, e.Name, anchor.Version, trust.ErrFork)
			}
		}
	}
	sort.Slice(newer, func(i, j int) bool { return newer[i].Version < newer[j].Version })
	r := anchor
	if len(newer) > 0 {
		var err error
		if r, err = trust.UpdateChain(anchor, newer, now); err != nil {
			return nil, fmt.Errorf("%w: the pack's trust root does not follow from version %d: %v", ErrContents, anchor.Version, err)
		}
	}
	if !now.Before(r.Expires) {
		return nil, fmt.Errorf("%w: trust root version %d expired at %s", ErrStale, r.Version, r.Expires.UTC().Format(time.RFC3339))
	}
	return r, nil
}

// packKeys returns the trust root's packer keys valid now, and the pinned
// keys.
func packKeys(r *trust.Document, pinned []crypto.PublicKey, now time.Time) []crypto.PublicKey {
	out := append([]crypto.PublicKey(nil), pinned...)
	for i := range r.Root.Keys {
		if k := &r.Root.Keys[i]; k.Role == trust.RolePacker && k.ValidAt(now) {
			out = append(out, k.PublicKey)
		}
	}
	return out
}

// verifyManifest checks the manifest bundle's signature and subject and
// reads its predicate.
func (out *Opened) verifyManifest(ctx context.Context, bundleJSON []byte, o Options) error {
	keys := packKeys(out.Root, o.PackKeys, o.Now)
	if len(keys) == 0 {
		return fmt.Errorf("%w: trust root version %d lists no packer key valid now, and no pack key is pinned", ErrSignature, out.Root.Version)
	}
	tm, err := gate.KeyMaterial(keys...)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	hexDigest, ok := strings.CutPrefix(o.Artifact, "sha256:")
	if !ok || !digestRe.MatchString(o.Artifact) {
		return fmt.Errorf("artifact digest %q is not sha256:HEX", o.Artifact)
	}
	rep, err := verify.Verify(ctx, bundleJSON, verify.Artifact{Digests: map[string]string{"sha256": hexDigest}}, tm,
		verify.Requirements{PredicateType: PredicateType})
	if err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrSignature, err)
	}
	if !rep.Verified {
		for _, c := range rep.Failed() {
			if c.Name == verify.CheckSubject && rep.Passed(verify.CheckSignature) {
				return fmt.Errorf("%w: the pack is not about this artifact (%s)", ErrSignature, c.Reason)
			}
		}
		return fmt.Errorf("%w: %s", ErrSignature, firstFailure(rep))
	}
	dec := json.NewDecoder(bytes.NewReader(rep.Statement.Predicate))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out.Manifest); err != nil {
		return fmt.Errorf("%w: manifest predicate: %v", ErrMalformed, err)
	}
	out.Signer = rep.Signer
	return nil
}

func firstFailure(rep *verify.Report) string {
	for _, c := range rep.Failed() {
		return c.Name + ": " + c.Reason
	}
	return "not verified"
}

// checkEntries holds the entries to the manifest's list: each listed entry
// present with its digest and size, nothing else present.
func checkEntries(p *Pack, refs []EntryRef) error {
	listed := map[string]EntryRef{}
	for _, r := range refs {
		if _, dup := listed[r.Name]; dup {
			return fmt.Errorf("%w: the manifest lists %q twice", ErrContents, r.Name)
		}
		listed[r.Name] = r
	}
	for _, e := range p.Entries {
		r, ok := listed[e.Name]
		if !ok {
			return fmt.Errorf("%w: entry %q is not in the signed manifest", ErrContents, e.Name)
		}
		if got := refOf(e); got != r {
			return fmt.Errorf("%w: entry %q does not match the signed manifest (sha256 %s, want %s)", ErrContents, e.Name, got.SHA256, r.SHA256)
		}
		delete(listed, e.Name)
	}
	for n := range listed {
		return fmt.Errorf("%w: entry %q of the signed manifest is missing", ErrContents, n)
	}
	return nil
}

// checkFresh refuses a pack made for another environment or trust root
// version, expired, made in the future, or older than its policy's maxAge.
func (out *Opened) checkFresh(o Options) error {
	m := &out.Manifest
	switch {
	case m.Environment != o.Environment:
		return fmt.Errorf("%w: the pack is for environment %q, not %q", ErrContents, m.Environment, o.Environment)
	case m.TrustRootVersion != out.Root.Version:
		return fmt.Errorf("%w: the pack was made under trust root version %d, its chain leads to %d", ErrContents, m.TrustRootVersion, out.Root.Version)
	case !o.Now.Before(m.Expires):
		return fmt.Errorf("%w: it expired at %s", ErrStale, m.Expires.Format(time.RFC3339))
	case m.Created.After(o.Now.Add(MaxClockSkew)):
		return fmt.Errorf("%w: it claims to be made at %s, in the future", ErrStale, m.Created.Format(time.RFC3339))
	}
	if out.Policy == nil || out.Policy.Policy().MaxAge == "" {
		return nil
	}
	maxAge, err := policy.ParseDuration(out.Policy.Policy().MaxAge)
	if err == nil && o.Now.Sub(m.Created) > maxAge {
		return fmt.Errorf("%w: made at %s, older than the policy's maxAge %s", ErrStale, m.Created.Format(time.RFC3339), out.Policy.Policy().MaxAge)
	}
	return nil
}

// readEntries reads the verified entries: bundles, the trusted root, the
// signed policy (checked against the trust root's admins and the
// manifest) and the checkpoints with their proofs.
func (out *Opened) readEntries(p *Pack, now time.Time) error {
	proofs := map[int]map[uint64][][]byte{}
	var notes [][]byte
	for _, e := range p.Entries {
		switch e.Kind() {
		case KindBundle:
			out.Bundles = append(out.Bundles, e.Content)
		case KindTrustedRoot:
			out.TrustedRoot = e.Content
		case KindPolicy:
			if err := out.readPolicy(e.Content, now); err != nil {
				return err
			}
		case KindCheckpoint:
			i, _ := strconv.Atoi(strings.TrimPrefix(e.Name, "checkpoint/"))
			for len(notes) <= i {
				notes = append(notes, nil)
			}
			notes[i] = e.Content
		case KindProof:
			parts := strings.Split(e.Name, "/")
			i, _ := strconv.Atoi(parts[1])
			from, _ := strconv.ParseUint(parts[2], 10, 64)
			h, err := decodeProof(e.Content)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrMalformed, e.Name, err)
			}
			if proofs[i] == nil {
				proofs[i] = map[uint64][][]byte{}
			}
			proofs[i][from] = h
		}
	}
	if out.Policy == nil {
		return fmt.Errorf("%w: no signed policy", ErrContents)
	}
	return out.readCheckpoints(notes, proofs, now)
}

func (out *Opened) readPolicy(b []byte, now time.Time) error {
	sp, err := policy.ParseSigned(b)
	if err != nil {
		return fmt.Errorf("%w: policy.signed.json: %v", ErrContents, err)
	}
	if _, err := sp.Verify(out.Root, now); err != nil {
		return fmt.Errorf("%w: the policy is not signed by the admins of trust root version %d: %v", ErrContents, out.Root.Version, err)
	}
	if env := sp.Policy().Environment; env != out.Manifest.Environment {
		return fmt.Errorf("%w: the signed policy is the policy of %q, not %q", ErrContents, env, out.Manifest.Environment)
	}
	if sp.Digest() != out.Manifest.PolicyDigest {
		return fmt.Errorf("%w: the signed policy (%s) is not the one the manifest names (%s)", ErrContents, sp.Digest(), out.Manifest.PolicyDigest)
	}
	out.Policy = sp
	return nil
}

// logs returns the transparency logs the trust root names (not the
// pack's trusted root: a log only the packer vouches for could sign any
// checkpoint, and move the device's state where no real log reaches).
func (out *Opened) logs() []note.Verifier {
	return logVerifiers(out.Root.Root.Tlogs)
}

// readCheckpoints opens the pack's checkpoints: each signed by a log the
// trust names and cosigned as the trust root's witness policy requires
// (trust.Document.WitnessPolicy: its witness threshold, or by default one
// witness when it lists any valid now), so a log cannot show this device a
// view of itself that too few trusted witnesses saw.
func (out *Opened) readCheckpoints(notes [][]byte, proofs map[int]map[uint64][][]byte, now time.Time) error {
	vs := out.logs()
	wp, err := out.Root.WitnessPolicy(now)
	if err != nil {
		return fmt.Errorf("%w: trust root version %d: %v", ErrContents, out.Root.Version, err)
	}
	seen := map[string]bool{}
	for i, n := range notes {
		if n == nil {
			return fmt.Errorf("%w: checkpoint/%d is missing", ErrContents, i)
		}
		c, cn, err := openCheckpoint(n, vs)
		if err != nil {
			return fmt.Errorf("checkpoint/%d: %w", i, err)
		}
		if err := witnessed(c, cn, wp, now, fmt.Sprintf("checkpoint/%d of %s (size %d)", i, c.Origin, c.Size)); err != nil {
			return err
		}
		if seen[c.Origin] {
			return fmt.Errorf("%w: two checkpoints of %s", ErrCheckpoint, c.Origin)
		}
		seen[c.Origin] = true
		out.Checkpoints = append(out.Checkpoints, c)
	}
	if len(out.Checkpoints) == 0 {
		return fmt.Errorf("%w: the pack has no log checkpoint", ErrCheckpoint)
	}
	out.Proven, out.Unproven, err = checkBundleCheckpoints(out.Bundles, out.Checkpoints, proofs, vs)
	return err
}
