package trust

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrWitnesses is wrapped by WitnessPolicy.Check's error for a checkpoint
// that fewer distinct witnesses validly cosigned than the policy requires.
var ErrWitnesses = errors.New("not enough witness cosignatures")

// MaxCosignatureSkew is how far past the verifier's clock a cosignature's
// timestamp may be and still count. C2SP tlog-cosignature lets verifiers
// reject cosignatures from the future; a witness whose clock runs this
// far ahead, or a cosignature made up to outlive the checks of the time
// it claims, does not count.
const MaxCosignatureSkew = 10 * time.Minute

// CosignatureVerifier returns the note verifier of cosignatures (C2SP
// tlog-cosignature/v1, https://c2sp.org/tlog-cosignature) by the witness
// named name with key pub: transparency-dev/formats' cosignature/v1
// verifier.
func CosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, fmt.Errorf("invalid witness name %q or key: %w", name, err)
	}
	// formats reads an Ed25519 verifier key as a cosignature/v1 key.
	return fnote.NewVerifierForCosignatureV1(vkey)
}

// Witnesses returns the cosignature verifiers of the witness keys (Role
// RoleWitness) valid at t, each named by its Identity. A witness key that
// is not Ed25519 or has no usable name is an error: the trust root then
// cannot say which cosignatures count.
func (r *Root) Witnesses(t time.Time) ([]note.Verifier, error) {
	var out []note.Verifier
	for i := range r.Keys {
		k := &r.Keys[i]
		if k.Role != RoleWitness || !k.ValidAt(t) {
			continue
		}
		pub, ok := k.PublicKey.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("witness key %s (%s) is not an Ed25519 key", short(k.ID), k.Identity)
		}
		v, err := CosignatureVerifier(k.Identity, pub)
		if err != nil {
			return nil, fmt.Errorf("witness key %s: %w", short(k.ID), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// witnessNames returns the distinct identities of the witness keys that
// are not revoked: the witnesses a threshold can count on.
func (d *Document) witnessNames() map[string]bool {
	names := map[string]bool{}
	for i := range d.Root.Keys {
		k := &d.Root.Keys[i]
		if k.Role == RoleWitness && k.CompromisedSince.IsZero() {
			names[k.Identity] = true
		}
	}
	return names
}

func (d *Document) validateWitnessThreshold() error {
	k := d.WitnessThreshold
	if k < 0 {
		return fmt.Errorf("witness threshold %d: must be at least 1 (or 0 for the default)", k)
	}
	if n := len(d.witnessNames()); k > n {
		return fmt.Errorf("witness threshold %d needs at least %d witnesses (witness keys of distinct identities that are not revoked), have %d", k, k, n)
	}
	return nil
}

// WitnessPolicy is what a log checkpoint's cosignatures must meet before
// a verifier relies on it: Threshold distinct Witnesses. Get it from a
// trust root with Document.WitnessPolicy; Check applies it.
type WitnessPolicy struct {
	// Witnesses verify the cosignatures that count, one per witness key
	// valid at the time the policy was made for.
	Witnesses []note.Verifier
	// Threshold is how many distinct witnesses (by name) must cosign.
	// Zero requires nothing.
	Threshold int
	// Explicit is true when the trust root sets the threshold
	// (Document.WitnessThreshold) rather than the default.
	Explicit bool
}

// WitnessPolicy returns d's witness policy at t: the witness keys valid at
// t, and d.WitnessThreshold of them, or by default one when any is valid
// at t and none otherwise.
func (d *Document) WitnessPolicy(t time.Time) (*WitnessPolicy, error) {
	ws, err := d.Root.Witnesses(t)
	if err != nil {
		return nil, err
	}
	p := &WitnessPolicy{Witnesses: ws, Threshold: d.WitnessThreshold, Explicit: d.WitnessThreshold > 0}
	if !p.Explicit && len(ws) > 0 {
		p.Threshold = 1
	}
	return p, nil
}

// Cosigned is the outcome of counting a checkpoint's cosignatures.
type Cosigned struct {
	// Witnesses names the distinct witnesses whose cosignature verified,
	// in the order their lines appear.
	Witnesses []string
	// Threshold is how many were required.
	Threshold int
	// Ignored says why each other signature line did not count.
	Ignored []string
}

// Met reports whether enough witnesses cosigned.
func (c *Cosigned) Met() bool { return len(c.Witnesses) >= c.Threshold }

// Count counts the cosignatures of n, a checkpoint note opened with the
// log's verifier only (so its cosignature lines are n.UnverifiedSigs), at
// time now. A line counts when its name and key hash are a witness's of
// p, its cosignature/v1 signature verifies over n's text (so a
// cosignature of another checkpoint never counts), and its timestamp is
// not later than now plus MaxCosignatureSkew. Each witness counts once,
// however many lines or keys it has.
func (p *WitnessPolicy) Count(n *note.Note, now time.Time) *Cosigned {
	out := &Cosigned{Threshold: p.Threshold}
	counted := map[string]bool{}
	for _, s := range n.UnverifiedSigs {
		v := p.verifier(s.Name, s.Hash)
		if v == nil {
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s: not a witness the trust root lists now", s.Name))
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(sig) < 4 || !v.Verify([]byte(n.Text), sig[4:]) {
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s: cosignature does not verify over this checkpoint", s.Name))
			continue
		}
		ts, err := fnote.CoSigV1Timestamp(s)
		switch {
		case err != nil || ts.Unix() < 0:
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s: cosignature timestamp is malformed", s.Name))
			continue
		case ts.After(now.Add(MaxCosignatureSkew)):
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s: cosignature timestamp %s is in the future", s.Name, ts.UTC().Format(time.RFC3339)))
			continue
		}
		if counted[s.Name] {
			out.Ignored = append(out.Ignored, fmt.Sprintf("%s: cosigned more than once, counted once", s.Name))
			continue
		}
		counted[s.Name] = true
		out.Witnesses = append(out.Witnesses, s.Name)
	}
	return out
}

// Check counts n's cosignatures (see Count) and returns an error wrapping
// ErrWitnesses, naming how many valid cosignatures of how many required
// it found, when they do not meet p. what names the checkpoint in the
// error ("checkpoint of log.example size 12").
func (p *WitnessPolicy) Check(n *note.Note, now time.Time, what string) (*Cosigned, error) {
	c := p.Count(n, now)
	if c.Met() {
		return c, nil
	}
	ignored := ""
	if len(c.Ignored) > 0 {
		shown := c.Ignored[:min(len(c.Ignored), 4)]
		ignored = " (ignored: " + strings.Join(shown, "; ")
		if more := len(c.Ignored) - len(shown); more > 0 {
			ignored += fmt.Sprintf("; %d more", more)
		}
		ignored += ")"
	}
	names := map[string]bool{}
	for _, v := range p.Witnesses {
		names[v.Name()] = true
	}
	return c, fmt.Errorf("%w: %s has valid cosignatures of %d witness(es), the trust root requires %d (of the %d it lists now)%s",
		ErrWitnesses, what, len(c.Witnesses), c.Threshold, len(names), ignored)
}

func (p *WitnessPolicy) verifier(name string, hash uint32) note.Verifier {
	for _, v := range p.Witnesses {
		if v.Name() == name && v.KeyHash() == hash {
			return v
		}
	}
	return nil
}
