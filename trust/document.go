package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/envelope"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Identifiers of a signed trust root document; see ROOT.md.
const (
	// DocumentPayloadType is the DSSE payload type of a trust root
	// document. It is part of what admins sign, so their signatures over
	// other payloads (an in-toto statement, say) never count here.
	DocumentPayloadType = "application/vnd.custody.trust-root+json"
	// DocumentType is the "type" field of the payload.
	DocumentType = "https://custody.dev/trust-root/v1"
	// MaxDocumentBytes is the largest document ParseDocument reads.
	MaxDocumentBytes = 4 << 20
)

// Reasons Update refuses a document. Each error Update returns wraps exactly
// one of them (or ErrMalformed) and says what was found.
var (
	// ErrRollback: the new document's version is not newer than the trusted one.
	ErrRollback = errors.New("rollback refused")
	// ErrVersionGap: the new document skips a version; fetch the ones between.
	ErrVersionGap = errors.New("version gap")
	// ErrThreshold: too few admins signed (signatures over other payloads,
	// by unknown, expired or revoked keys, or repeated keys do not count).
	ErrThreshold = errors.New("not enough admin signatures")
	// ErrExpired: the document's expiry has passed.
	ErrExpired = errors.New("trust root expired")
	// ErrFork: another document of the same version is already trusted.
	ErrFork = errors.New("conflicting trust root of the same version")
)

// Document is a signed, versioned custody trust root: the Root (keys with
// roles, identities, windows and compromise times; logs, TSAs and CAs), the
// admin threshold that must sign the next version, an expiry, and the
// signatures of admins over its canonical payload (a DSSE envelope of
// DocumentPayloadType). See ROOT.md for the format and the update rules.
//
// The payload is always the canonical encoding of the fields: changing a
// field invalidates every signature. Use the edit methods (AddKey,
// RotateKey, RevokeKey, SetThreshold, SetExpires, SetAuthorities), which
// start the next version and drop the signatures, then Sign.
type Document struct {
	// Version numbers documents from 1; each accepted update is exactly
	// one more than the trusted version.
	Version int
	// Expires is when the document stops being accepted as the newest.
	Expires time.Time
	// Threshold is how many distinct admin keys (Role RoleAdmin in
	// Root.Keys) must sign this version and the next.
	Threshold int
	// WitnessThreshold is how many distinct witnesses (keys of Role
	// RoleWitness, one witness per Identity) must cosign a log checkpoint
	// before a verifier relies on it (C2SP tlog-cosignature; see
	// WitnessPolicy). Zero leaves it unset: one cosignature is needed when
	// the root lists a witness key valid at the time, none otherwise, and
	// custody's clients of a server do not look for cosignatures.
	WitnessThreshold int
	// Root is what the document trusts. Every key needs a Role.
	Root Root
	// Signatures are the admins' DSSE signatures over the payload.
	Signatures []Signature
}

// Signature is one DSSE signature of a Document or signed policy: KeyID is
// KeyID of the signing key's public key, Sig the signature over the DSSE
// pre-authentication encoding of the payload.
type Signature = envelope.Signature

// NewDocument starts version 1 of a trust root with the given admin keys
// (their Role is set to RoleAdmin), threshold and expiry. It is unsigned.
func NewDocument(admins []Key, threshold int, expires time.Time) (*Document, error) {
	d := &Document{Version: 1, Expires: expires, Threshold: threshold}
	for _, k := range admins {
		k.Role = RoleAdmin
		if k.ID == "" && k.PublicKey != nil {
			id, err := KeyID(k.PublicKey)
			if err != nil {
				return nil, err
			}
			k.ID = id
		}
		d.Root.Keys = append(d.Root.Keys, k)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks that d can be written and signed: version, threshold and
// expiry are set, every key has a known role and a unique ID and public key,
// every witness key is Ed25519 and named (its Identity), a witness
// threshold names no more witnesses than are listed and not revoked, the
// Root exports, and there are at least Threshold admin keys that are not
// revoked.
func (d *Document) Validate() error {
	if d.Version < 1 {
		return fmt.Errorf("version %d: versions start at 1", d.Version)
	}
	if d.Expires.IsZero() {
		return errors.New("expiry is missing")
	}
	if d.Threshold < 1 {
		return fmt.Errorf("threshold %d: must be at least 1", d.Threshold)
	}
	if err := d.validateWitnessThreshold(); err != nil {
		return err
	}
	admins := 0
	seen := map[string]int{}
	for i := range d.Root.Keys {
		k := &d.Root.Keys[i]
		if k.Role == "" {
			return fmt.Errorf("key %d: role is missing", i)
		}
		if err := checkPublicKey(k.PublicKey); err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
		fp, err := KeyID(k.PublicKey)
		if err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
		if j, dup := seen[fp]; dup {
			return fmt.Errorf("key %d: same public key as key %d", i, j)
		}
		seen[fp] = i
		if k.Role == RoleWitness {
			pub, ok := k.PublicKey.(ed25519.PublicKey)
			if !ok {
				return fmt.Errorf("key %d: a witness key must be Ed25519 (C2SP tlog-cosignature)", i)
			}
			if _, err := CosignatureVerifier(k.Identity, pub); err != nil {
				return fmt.Errorf("key %d: a witness key's identity is the name it cosigns as: %w", i, err)
			}
		}
		if k.Role == RoleAdmin && k.CompromisedSince.IsZero() {
			admins++
		}
	}
	if admins < d.Threshold {
		return fmt.Errorf("threshold %d needs at least %d admin keys that are not revoked, have %d", d.Threshold, d.Threshold, admins)
	}
	return d.Root.Validate()
}

// Payload returns the canonical payload bytes that admins sign.
func (d *Document) Payload() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	tr, err := d.Root.MarshalTrustedRootJSON()
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, tr); err != nil {
		return nil, fmt.Errorf("couldn't encode trusted root: %w", err)
	}
	p := payloadJSON{
		Type:        DocumentType,
		Version:     d.Version,
		Expires:     formatTime(d.Expires),
		Threshold:   d.Threshold,
		Keys:        make([]keyJSON, 0, len(d.Root.Keys)),
		TrustedRoot: compact.Bytes(),
	}
	for i := range d.Root.Keys {
		kj, err := keyToJSON(&d.Root.Keys[i])
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		p.Keys = append(p.Keys, kj)
	}
	if d.WitnessThreshold != 0 {
		p.WitnessThreshold = &d.WitnessThreshold
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("couldn't encode trust root: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Marshal returns d as a DSSE envelope (JSON, indented, newline-terminated).
func (d *Document) Marshal() ([]byte, error) {
	payload, err := d.Payload()
	if err != nil {
		return nil, err
	}
	return envelope.Marshal(DocumentPayloadType, payload, d.Signatures)
}

// ParseDocument reads a trust root document written by Marshal. Anything
// that is not exactly that (another payload type, unknown fields, a payload
// that is not custody's canonical encoding of what it says, an invalid key
// or window) returns an error wrapping ErrMalformed. Signatures are not
// checked: that is Update's and VerifyDocument's job.
func ParseDocument(b []byte) (*Document, error) {
	d, err := parseDocument(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return d, nil
}

func parseDocument(b []byte) (*Document, error) {
	if len(b) > MaxDocumentBytes {
		return nil, fmt.Errorf("trust root is larger than %d bytes", MaxDocumentBytes)
	}
	payload, sigs, err := envelope.Parse(b, DocumentPayloadType)
	if err != nil {
		return nil, fmt.Errorf("trust root: %w", err)
	}
	var p payloadJSON
	if err := strictUnmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if p.Type != DocumentType {
		return nil, fmt.Errorf("payload type field %q, want %q", p.Type, DocumentType)
	}
	d := &Document{Version: p.Version, Threshold: p.Threshold}
	if p.WitnessThreshold != nil {
		if *p.WitnessThreshold < 1 {
			return nil, fmt.Errorf("witnessThreshold %d: must be at least 1 (leave the field out for the default)", *p.WitnessThreshold)
		}
		d.WitnessThreshold = *p.WitnessThreshold
	}
	if d.Expires, err = parseTime(p.Expires); err != nil {
		return nil, fmt.Errorf("expires: %w", err)
	}
	if len(p.TrustedRoot) == 0 {
		return nil, errors.New("trustedRoot is missing")
	}
	tr, err := LoadTrustedRoot(p.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("trustedRoot: %w", err)
	}
	d.Root = *tr
	for i, kj := range p.Keys {
		k, err := keyFromJSON(kj)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		d.Root.Keys = append(d.Root.Keys, k)
	}
	d.Signatures = sigs
	canonical, err := d.Payload()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, payload) {
		return nil, errors.New("payload is not in canonical form (re-encoding it gives other bytes)")
	}
	return d, nil
}

// Sign adds s's signature over d's payload, replacing an earlier signature
// by the same key. Any key may sign: an admin of the previous version that
// is not an admin of d must sign d for an update that changes the admins.
func (d *Document) Sign(ctx context.Context, s crypto.Signer) error {
	payload, err := d.Payload()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sig, err := SignMessage(s, dsse.PAE(DocumentPayloadType, payload))
	if err != nil {
		return fmt.Errorf("couldn't sign trust root: %w", err)
	}
	id, err := KeyID(s.Public())
	if err != nil {
		return err
	}
	d.Signatures = slices.DeleteFunc(d.Signatures, func(x Signature) bool { return x.KeyID == id })
	d.Signatures = append(d.Signatures, Signature{KeyID: id, Sig: sig})
	return nil
}

// Tally is the outcome of counting one set of admins' signatures on a
// document or signed policy. Its Met is false for a threshold below 1.
type Tally = envelope.Tally

// CountSignatures counts the signatures on d made by admins of by (by may be
// d itself) at time now: keys of Role RoleAdmin in by.Root.Keys whose
// effective window contains now. Each admin counts once however often it
// signed; a signature counts only if it verifies over d's payload, so
// signatures taken from another document or version never count.
func (d *Document) CountSignatures(by *Document, now time.Time) (Tally, error) {
	return d.countSignatures(by, now, true)
}

func (d *Document) countSignatures(by *Document, now time.Time, windows bool) (Tally, error) {
	payload, err := d.Payload()
	if err != nil {
		return Tally{Threshold: by.Threshold}, err
	}
	lookup := func(id string) (crypto.PublicKey, string) {
		admin := by.admin(id)
		switch {
		case admin == nil:
			return nil, fmt.Sprintf("not an admin of version %d", by.Version)
		case windows && !admin.ValidAt(now):
			return nil, fmt.Sprintf("admin key of version %d is revoked or outside its window", by.Version)
		}
		return admin.PublicKey, ""
	}
	what := fmt.Sprintf("version %d's payload", d.Version)
	return envelope.Count(DocumentPayloadType, payload, d.Signatures, by.Threshold, lookup, what), nil
}

// admin returns the admin key of d whose KeyID is id, or nil.
func (d *Document) admin(id string) *Key {
	for i := range d.Root.Keys {
		k := &d.Root.Keys[i]
		if k.Role != RoleAdmin {
			continue
		}
		if fp, err := KeyID(k.PublicKey); err == nil && fp == id {
			return k
		}
	}
	return nil
}

// VerifyDocument checks d on its own, for a client that trusts no earlier
// version (trust on first use): d must not be expired at now and must be
// signed by Threshold of its own admins. Errors wrap ErrExpired or
// ErrThreshold.
func VerifyDocument(d *Document, now time.Time) error {
	if !now.Before(d.Expires) {
		return fmt.Errorf("%w: version %d expired at %s", ErrExpired, d.Version, formatTime(d.Expires))
	}
	return checkThreshold(d, d, now, "its own")
}

// VerifyStored checks a document a client stored earlier, each time it is
// read: it must carry its own admins' threshold of signatures over its
// payload (ErrThreshold; ErrMalformed when its payload cannot be made).
// Expiry and admin windows are not checked: the stored version stays the
// anchor that Update checks the next version against, after it expired
// and after its admins were rotated.
func VerifyStored(d *Document) error {
	t, err := d.countSignatures(d, time.Time{}, false)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return thresholdErr(d, t, "its own")
}

// Update decides whether a client that trusts the document trusted may
// move to next, as TUF clients update their root: next.Version must be
// trusted.Version+1 (ErrRollback for an older or equal version,
// ErrVersionGap for a newer one), next must not be expired at now
// (ErrExpired; trusted itself may be), and next must be signed by
// trusted.Threshold of trusted's admins and by next.Threshold of its own
// admins (ErrThreshold). Requiring both means an admin set can only change
// with the consent of the old admins and the new ones.
func Update(trusted, next *Document, now time.Time) error {
	if err := step(trusted, next, now); err != nil {
		return err
	}
	if !now.Before(next.Expires) {
		return fmt.Errorf("%w: version %d expired at %s", ErrExpired, next.Version, formatTime(next.Expires))
	}
	return nil
}

// UpdateChain walks trusted through next in order (each one version newer)
// and returns the last document. Only the last one must be unexpired.
func UpdateChain(trusted *Document, next []*Document, now time.Time) (*Document, error) {
	cur := trusted
	for i, n := range next {
		var err error
		if i == len(next)-1 {
			err = Update(cur, n, now)
		} else {
			err = step(cur, n, now)
		}
		if err != nil {
			return nil, err
		}
		cur = n
	}
	return cur, nil
}

func step(trusted, next *Document, now time.Time) error {
	switch {
	case next.Version <= trusted.Version:
		return fmt.Errorf("%w: version %d is not newer than the trusted version %d", ErrRollback, next.Version, trusted.Version)
	case next.Version != trusted.Version+1:
		return fmt.Errorf("%w: version %d does not follow the trusted version %d; update through version %d first", ErrVersionGap, next.Version, trusted.Version, trusted.Version+1)
	}
	if err := checkThreshold(next, trusted, now, fmt.Sprintf("the trusted version %d's", trusted.Version)); err != nil {
		return err
	}
	return checkThreshold(next, next, now, "its own")
}

func checkThreshold(d, by *Document, now time.Time, whose string) error {
	t, err := d.CountSignatures(by, now)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return thresholdErr(d, t, whose)
}

// thresholdErr is nil when t is met, else ErrThreshold saying by whose
// admins d is not signed enough and which signatures were ignored.
func thresholdErr(d *Document, t Tally, whose string) error {
	if t.Met() {
		return nil
	}
	ignored := ""
	if len(t.Ignored) > 0 {
		ignored = " (ignored: " + strings.Join(t.Ignored, "; ") + ")"
	}
	return fmt.Errorf("%w: version %d is signed by %d of %s admins, needs %d%s", ErrThreshold, d.Version, len(t.Valid), whose, t.Threshold, ignored)
}

// SignMessage signs msg (a DSSE pre-authentication encoding) as sigstore's
// default verifiers for the key check it: ECDSA with SHA-256, SHA-384 or
// SHA-512 by curve, pure Ed25519, RSA PKCS #1 v1.5 with SHA-256. Trust root
// versions and signed policies are signed with it.
func SignMessage(s crypto.Signer, msg []byte) ([]byte, error) {
	var h crypto.Hash
	switch k := s.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			h = crypto.SHA256
		case elliptic.P384():
			h = crypto.SHA384
		case elliptic.P521():
			h = crypto.SHA512
		default:
			return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		return s.Sign(rand.Reader, msg, crypto.Hash(0))
	case *rsa.PublicKey:
		h = crypto.SHA256
	default:
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	hh := h.New()
	hh.Write(msg)
	return s.Sign(rand.Reader, hh.Sum(nil), h)
}

// short abbreviates a key ID for messages.
func short(id string) string { return envelope.Short(id) }

// Wire format. Field order here is the canonical order.

type payloadJSON struct {
	Type      string `json:"type"`
	Version   int    `json:"version"`
	Expires   string `json:"expires"`
	Threshold int    `json:"threshold"`
	// WitnessThreshold is left out when unset, so documents written
	// before it existed keep their bytes (and signatures).
	WitnessThreshold *int            `json:"witnessThreshold,omitempty"`
	Keys             []keyJSON       `json:"keys"`
	TrustedRoot      json.RawMessage `json:"trustedRoot"`
}

// keyJSON is custody's JSON record of one key: what a trusted_root.json
// cannot hold.
type keyJSON struct {
	ID               string      `json:"id"`
	Role             string      `json:"role"`
	Identity         string      `json:"identity,omitempty"`
	PublicKey        string      `json:"publicKey"`
	ValidFor         *windowJSON `json:"validFor,omitempty"`
	CompromisedSince string      `json:"compromisedSince,omitempty"`
}

type windowJSON struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

func keyToJSON(k *Key) (keyJSON, error) {
	id, err := k.keyID()
	if err != nil {
		return keyJSON{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(k.PublicKey)
	if err != nil {
		return keyJSON{}, fmt.Errorf("couldn't encode public key: %w", err)
	}
	kj := keyJSON{
		ID:        id,
		Role:      string(k.Role),
		Identity:  k.Identity,
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}
	if !k.Window.Start.IsZero() || !k.Window.End.IsZero() {
		kj.ValidFor = &windowJSON{Start: formatTime(k.Window.Start), End: formatTime(k.Window.End)}
	}
	kj.CompromisedSince = formatTime(k.CompromisedSince)
	return kj, nil
}

func keyFromJSON(kj keyJSON) (Key, error) {
	var k Key
	role, err := ParseRole(kj.Role)
	if err != nil {
		return k, err
	}
	if kj.ID == "" {
		return k, errors.New("id is missing")
	}
	block, rest := pem.Decode([]byte(kj.PublicKey))
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) > 0 {
		return k, errors.New("publicKey is not one PEM PUBLIC KEY block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return k, fmt.Errorf("publicKey: %w", err)
	}
	k = Key{ID: kj.ID, PublicKey: pub, Role: role, Identity: kj.Identity}
	if kj.ValidFor != nil {
		if k.Window.Start, err = parseTime(kj.ValidFor.Start); err != nil {
			return k, fmt.Errorf("validFor.start: %w", err)
		}
		if k.Window.End, err = parseTime(kj.ValidFor.End); err != nil {
			return k, fmt.Errorf("validFor.end: %w", err)
		}
	}
	if k.CompromisedSince, err = parseTime(kj.CompromisedSince); err != nil {
		return k, fmt.Errorf("compromisedSince: %w", err)
	}
	return k, nil
}

// formatTime writes t in UTC, RFC 3339 with only the fractional digits
// needed; the zero time is "".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("time %q is the zero time", s)
	}
	return t.UTC(), nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// KeysMediaType is the "type" of the key record MarshalKeys writes.
const KeysMediaType = "https://custody.dev/trust-keys/v1"

// MarshalKeys returns custody's record of d's keys, what a Sigstore
// trusted_root.json has no place for: each key's ID (the bundle hint),
// role, identity, PEM public key, window and compromise time, with the
// document version they come from. Indented JSON, newline-terminated.
func (d *Document) MarshalKeys() ([]byte, error) {
	rec := struct {
		Type        string    `json:"type"`
		RootVersion int       `json:"rootVersion"`
		Keys        []keyJSON `json:"keys"`
	}{Type: KeysMediaType, RootVersion: d.Version, Keys: []keyJSON{}}
	for i := range d.Root.Keys {
		kj, err := keyToJSON(&d.Root.Keys[i])
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		rec.Keys = append(rec.Keys, kj)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rec); err != nil {
		return nil, fmt.Errorf("couldn't encode key record: %w", err)
	}
	return buf.Bytes(), nil
}
