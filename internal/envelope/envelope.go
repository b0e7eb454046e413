// Package envelope reads, writes and counts the k-of-n DSSE envelopes that
// decide who may change custody's trust: trust root versions
// (trust.Document) and signed policies (policy.Signed). Both callers share
// one wire reader (Parse), one writer (Marshal) and one counter (Count), so
// the two cannot drift; docs/design/k-of-n-envelopes.md is the contract.
//
// The wire type and the pre-authentication encoding are go-securesystemslib's
// dsse.Envelope and dsse.PAE. Its EnvelopeVerifier is not used: it accepts
// URL-safe base64 as well as standard, matches a signature with an empty
// keyid against every key, prints to stdout when one key signs twice, and
// says why a signature did not count only in one error string, where
// custody reports each ignored signature and checks admin windows.
package envelope

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/custody-dev/custody/internal/jsonstrict"
	"github.com/custody-dev/custody/keyid"
)

// MaxSignatures is the most signatures Parse reads from one envelope.
const MaxSignatures = 64

// Signature is one DSSE signature: the signer's key ID (a hint, see Count)
// and the signature over the DSSE pre-authentication encoding.
type Signature struct {
	KeyID string
	Sig   []byte
}

// Tally is the outcome of counting one set of admins' signatures.
type Tally struct {
	// Valid lists the IDs of distinct admin keys whose signature verified.
	Valid []string
	// Threshold is how many were needed.
	Threshold int
	// Ignored says why the other signatures did not count.
	Ignored []string
}

// Met reports whether enough admins signed. A threshold below 1 is never
// met: an envelope that needs no signature is refused, not accepted.
func (t Tally) Met() bool { return t.Threshold >= 1 && len(t.Valid) >= t.Threshold }

// Parse reads a DSSE envelope from untrusted bytes: one JSON object with
// exactly the members payloadType (which must be payloadType), payload and
// signatures, no member named twice, valid UTF-8, nothing after it;
// standard base64; at most MaxSignatures signatures, each with a non-empty
// keyid and sig. It checks no signature (see Count).
func Parse(b []byte, payloadType string) (payload []byte, sigs []Signature, err error) {
	// A member named twice would be read as its last value here and maybe
	// as its first by another reader of the same envelope.
	if err := jsonstrict.Check(b); err != nil {
		return nil, nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	var e dsse.Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("data after the DSSE envelope")
	}
	if e.PayloadType != payloadType {
		return nil, nil, fmt.Errorf("payloadType is %q, want %q", e.PayloadType, payloadType)
	}
	if payload, err = base64.StdEncoding.DecodeString(e.Payload); err != nil {
		return nil, nil, errors.New("payload is not standard base64")
	}
	if len(e.Signatures) > MaxSignatures {
		return nil, nil, fmt.Errorf("%d signatures, at most %d are read", len(e.Signatures), MaxSignatures)
	}
	for i, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || len(sig) == 0 || s.KeyID == "" {
			return nil, nil, fmt.Errorf("signature %d has no keyid or no standard base64 sig", i)
		}
		sigs = append(sigs, Signature{KeyID: s.KeyID, Sig: sig})
	}
	return payload, sigs, nil
}

// Marshal returns the envelope as indented JSON ending in a newline.
func Marshal(payloadType string, payload []byte, sigs []Signature) ([]byte, error) {
	e := dsse.Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []dsse.Signature{}}
	for _, s := range sigs {
		e.Signatures = append(e.Signatures, dsse.Signature{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("couldn't encode DSSE envelope: %w", err)
	}
	return buf.Bytes(), nil
}

// Lookup finds the admin key a signature's keyid names. It returns the
// public key, or nil and why the signature does not count (not an admin,
// revoked, outside its window). It must find the admin by recomputing each
// admin key's ID and comparing exactly: the keyid is only a hint.
type Lookup func(keyID string) (pub crypto.PublicKey, ignored string)

// Count counts the signatures sigs over payload (of payloadType) against
// threshold admins found by lookup. Each key ID counts once: a repeated
// one is ignored, and because lookup compares canonical key IDs, the same
// key under another keyid string names no admin. A signature counts only
// if it verifies over the DSSE pre-authentication encoding of this
// payloadType and payload; what names the payload in the reason for one
// that does not.
func Count(payloadType string, payload []byte, sigs []Signature, threshold int, lookup Lookup, what string) Tally {
	t := Tally{Threshold: threshold}
	pae := dsse.PAE(payloadType, payload)
	counted := map[string]bool{}
	for _, s := range sigs {
		if counted[s.KeyID] {
			t.Ignored = append(t.Ignored, Short(s.KeyID)+": repeated signature by the same key")
			continue
		}
		pub, why := lookup(s.KeyID)
		if pub == nil {
			t.Ignored = append(t.Ignored, Short(s.KeyID)+": "+why)
			continue
		}
		if err := verify(pub, s.Sig, pae); err != nil {
			t.Ignored = append(t.Ignored, Short(s.KeyID)+": signature does not verify over "+what)
			continue
		}
		counted[s.KeyID] = true
		t.Valid = append(t.Valid, s.KeyID)
	}
	return t
}

func verify(pub crypto.PublicKey, sig, msg []byte) error {
	v, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg))
}

// Short abbreviates a key ID for messages, in the printed (hex) form if it
// is a SHA-256 key ID (see package keyid).
func Short(id string) string {
	id = keyid.Display(id)
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}
