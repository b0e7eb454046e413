package policy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/envelope"
	"github.com/custody-dev/custody/trust"
)

// SignedPayloadType is the DSSE payload type of a signed policy. It is part
// of what admins sign, so an admin's signature over a trust root or an
// in-toto statement never counts as a signature over a policy.
const SignedPayloadType = "application/vnd.custody.policy+yaml"

// MaxSignedBytes is the largest signed policy envelope ParseSigned reads:
// the policy (at most MaxPolicyBytes) in base64 plus its signatures.
const MaxSignedBytes = MaxPolicyBytes*4/3 + 64<<10

// ErrThreshold is wrapped by Signed.Verify's error when fewer than the
// trust root's threshold of its current admins signed the policy. It wraps
// trust.ErrThreshold too.
var ErrThreshold = fmt.Errorf("policy %w", trust.ErrThreshold)

// Signed is a policy signed by the admins of a custody trust root
// (trust.Document): a DSSE envelope
// (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md) of
// payload type SignedPayloadType whose payload is the policy's YAML bytes,
// exactly as written. DSSE allows several signatures over one payload: each
// admin adds one (Sign) until the trust root's threshold is met (Verify).
//
// A signed policy is named by Digest, the SHA-256 of the signed bytes, not
// by the canonical digest of Policy.Digest for a policy read from a file:
// the Policy that Signed.Policy returns carries this digest, so that a
// decision made under a pushed policy names exactly the bytes the admins
// signed and the server's audit entry records.
type Signed struct {
	// Payload is the policy YAML.
	Payload []byte
	// Signatures are the admins' signatures over the DSSE
	// pre-authentication encoding of Payload.
	Signatures []trust.Signature

	policy *Policy
}

// NewSigned starts an unsigned envelope of the policy YAML b. It refuses a
// document Parse refuses (errors wrap ErrMalformed).
func NewSigned(b []byte) (*Signed, error) {
	s := &Signed{Payload: bytes.Clone(b)}
	if err := s.parse(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Signed) parse() error {
	p, err := Parse(s.Payload)
	if err != nil {
		return err
	}
	p.digest = s.Digest()
	s.policy = p
	return nil
}

// Policy returns the parsed policy; its Digest is s.Digest().
func (s *Signed) Policy() *Policy { return s.policy }

// Digest returns "sha256:HEX", the SHA-256 of the signed policy bytes.
func (s *Signed) Digest() string {
	sum := sha256.Sum256(s.Payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Sign adds sg's signature, replacing an earlier one by the same key.
func (s *Signed) Sign(ctx context.Context, sg crypto.Signer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sig, err := trust.SignMessage(sg, dsse.PAE(SignedPayloadType, s.Payload))
	if err != nil {
		return fmt.Errorf("couldn't sign policy: %w", err)
	}
	id, err := trust.KeyID(sg.Public())
	if err != nil {
		return err
	}
	s.Signatures = slices.DeleteFunc(s.Signatures, func(x trust.Signature) bool { return x.KeyID == id })
	s.Signatures = append(s.Signatures, trust.Signature{KeyID: id, Sig: sig})
	return nil
}

// Verify counts the signatures on s made by admins of root whose window
// (ended at its compromise time) contains now; each admin counts once, and
// a signature counts only if it verifies over s's payload. It returns the
// tally, and an error wrapping ErrThreshold when fewer than root.Threshold
// admins signed.
func (s *Signed) Verify(root *trust.Document, now time.Time) (trust.Tally, error) {
	lookup := func(id string) (crypto.PublicKey, string) {
		admin := adminKey(root, id)
		switch {
		case admin == nil:
			return nil, fmt.Sprintf("not an admin of trust root version %d", root.Version)
		case !admin.ValidAt(now):
			return nil, "admin key is revoked or outside its window"
		}
		return admin.PublicKey, ""
	}
	t := envelope.Count(SignedPayloadType, s.Payload, s.Signatures, root.Threshold, lookup, "this policy")
	if !t.Met() {
		ignored := ""
		if len(t.Ignored) > 0 {
			ignored = " (ignored: " + strings.Join(t.Ignored, "; ") + ")"
		}
		return t, fmt.Errorf("%w: signed by %d of trust root version %d's admins, needs %d%s", ErrThreshold, len(t.Valid), root.Version, root.Threshold, ignored)
	}
	return t, nil
}

func adminKey(root *trust.Document, id string) *trust.Key {
	for i := range root.Root.Keys {
		k := &root.Root.Keys[i]
		if k.Role != trust.RoleAdmin {
			continue
		}
		if kid, err := trust.KeyID(k.PublicKey); err == nil && kid == id {
			return k
		}
	}
	return nil
}

// Marshal returns the DSSE envelope as JSON.
func (s *Signed) Marshal() ([]byte, error) {
	return envelope.Marshal(SignedPayloadType, s.Payload, s.Signatures)
}

// ParseSigned parses a signed policy envelope from untrusted bytes: one
// JSON object with exactly the fields payloadType (SignedPayloadType),
// payload and signatures (standard base64; keyid and sig, each signature
// non-empty, at most 64), whose payload is a policy Parse accepts. It does
// not check the signatures (see Verify). Errors wrap ErrMalformed.
func ParseSigned(b []byte) (*Signed, error) {
	if len(b) > MaxSignedBytes {
		return nil, malformed("signed policy is %d bytes, more than the limit of %d", len(b), MaxSignedBytes)
	}
	payload, sigs, err := envelope.Parse(b, SignedPayloadType)
	if err != nil {
		return nil, malformed("signed policy: %w", err)
	}
	s := &Signed{Payload: payload, Signatures: sigs}
	if err := s.parse(); err != nil {
		return nil, err
	}
	return s, nil
}
