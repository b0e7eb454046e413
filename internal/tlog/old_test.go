package tlog

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"golang.org/x/mod/sumdb/note"
)

// The hand-written checkpoint, note, cosignature and entry code that
// transparency-dev/formats and rekor-tiles replaced, kept only to hold the
// new paths to it (differential_test.go); deleted in the next commit.

// oldParseCheckpoint verifies the signed note signed by v (whose name must be
// the checkpoint's origin) and parses the checkpoint it carries. Signatures
// by other keys (cosignatures) are allowed and left unverified.
func oldParseCheckpoint(signed []byte, v note.Verifier) (*Checkpoint, error) {
	if len(signed) > maxCheckpointBytes {
		return nil, fmt.Errorf("checkpoint of %d bytes is too large", len(signed))
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("couldn't verify checkpoint signature: %w", err)
	}
	cp, err := oldParseCheckpointBody(n.Text)
	if err != nil {
		return nil, err
	}
	if cp.Origin != v.Name() {
		return nil, fmt.Errorf("checkpoint origin %q is not %q", cp.Origin, v.Name())
	}
	cp.Note = append([]byte(nil), signed...)
	return cp, nil
}

// oldParseCheckpointBody parses the text of a checkpoint note.
func oldParseCheckpointBody(text string) (*Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 {
		return nil, errors.New("checkpoint has fewer than three lines")
	}
	for _, l := range lines[:len(lines)-1] {
		if l == "\n" {
			return nil, errors.New("checkpoint has an empty line")
		}
	}
	if lines[len(lines)-1] != "" {
		return nil, errors.New("checkpoint does not end with a newline")
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	sizeStr := strings.TrimSuffix(lines[1], "\n")
	if origin == "" {
		return nil, errors.New("checkpoint has an empty origin")
	}
	if sizeStr == "" || (len(sizeStr) > 1 && sizeStr[0] == '0') || strings.TrimLeft(sizeStr, "0123456789") != "" {
		return nil, fmt.Errorf("checkpoint size %q is not a decimal number", sizeStr)
	}
	size, err := strconv.ParseUint(sizeStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint size %q: %w", sizeStr, err)
	}
	hash, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(hash) != 32 {
		return nil, errors.New("checkpoint root hash is not 32 bytes of base64")
	}
	return &Checkpoint{Origin: origin, Size: size, Hash: hash}, nil
}

// Signature type bytes of C2SP signed-note key IDs.
const (
	oldSigTypeEd25519     = 0x01
	oldSigTypeCosignature = 0x04
)

// oldValidName reports whether name can be a signed-note key name.
func oldValidName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// oldKeyHash returns the signed-note key ID (first four bytes) and the full
// SHA-256 it was cut from, computed as Rekor v2 (and so sigstore-go) does:
// Ed25519 keys use the C2SP form SHA-256(name || "\n" || 0x01 || key),
// ECDSA keys use SHA-256 of the PKIX DER public key.
func oldKeyHash(name string, pub crypto.PublicKey) (uint32, []byte, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		h := sha256.New()
		h.Write([]byte(name))
		h.Write([]byte{'\n', oldSigTypeEd25519})
		h.Write(k)
		sum := h.Sum(nil)
		return binary.BigEndian.Uint32(sum), sum, nil
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return 0, nil, fmt.Errorf("couldn't marshal ecdsa key: %w", err)
		}
		sum := sha256.Sum256(der)
		return binary.BigEndian.Uint32(sum[:]), sum[:], nil
	default:
		return 0, nil, fmt.Errorf("unsupported log key type %T (want Ed25519 or ECDSA)", pub)
	}
}

// oldEcdsaHash is the digest an ECDSA key of this curve signs notes with.
func oldEcdsaHash(k *ecdsa.PublicKey) crypto.Hash {
	switch k.Curve.Params().BitSize {
	case 384:
		return crypto.SHA384
	case 521:
		return crypto.SHA512
	default:
		return crypto.SHA256
	}
}

// oldNoteSigner signs notes with a crypto.Signer, so that the key can live in
// a file, a KMS or a PKCS#11 token.
type oldNoteSigner struct {
	name   string
	hash   uint32
	signer crypto.Signer
	// after, if set, is called with every note body and its signature.
	after func(msg, sig []byte) error
}

func oldNewNoteSigner(name string, s crypto.Signer) (*oldNoteSigner, error) {
	if !oldValidName(name) {
		return nil, fmt.Errorf("invalid note name %q", name)
	}
	if s == nil {
		return nil, errors.New("no signer")
	}
	h, _, err := oldKeyHash(name, s.Public())
	if err != nil {
		return nil, err
	}
	return &oldNoteSigner{name: name, hash: h, signer: s}, nil
}

func (n *oldNoteSigner) Name() string    { return n.name }
func (n *oldNoteSigner) KeyHash() uint32 { return n.hash }

func (n *oldNoteSigner) Sign(msg []byte) ([]byte, error) {
	var sig []byte
	var err error
	switch k := n.signer.Public().(type) {
	case ed25519.PublicKey:
		sig, err = n.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		hf := oldEcdsaHash(k)
		h := hf.New()
		h.Write(msg)
		sig, err = n.signer.Sign(rand.Reader, h.Sum(nil), hf)
	default:
		err = fmt.Errorf("unsupported log key type %T", k)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't sign note: %w", err)
	}
	if n.after != nil {
		if err := n.after(msg, sig); err != nil {
			return nil, err
		}
	}
	return sig, nil
}

// oldNoteVerifier verifies notes signed by a oldNoteSigner.
type oldNoteVerifier struct {
	name string
	hash uint32
	pub  crypto.PublicKey
}

// oldNewNoteVerifier returns a note.Verifier for checkpoints signed by the log
// named origin with the public key pub (Ed25519 or ECDSA).
func oldNewNoteVerifier(origin string, pub crypto.PublicKey) (note.Verifier, error) {
	if !oldValidName(origin) {
		return nil, fmt.Errorf("invalid note name %q", origin)
	}
	h, _, err := oldKeyHash(origin, pub)
	if err != nil {
		return nil, err
	}
	return &oldNoteVerifier{name: origin, hash: h, pub: pub}, nil
}

func (n *oldNoteVerifier) Name() string    { return n.name }
func (n *oldNoteVerifier) KeyHash() uint32 { return n.hash }

func (n *oldNoteVerifier) Verify(msg, sig []byte) bool {
	switch k := n.pub.(type) {
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		h := oldEcdsaHash(k).New()
		h.Write(msg)
		return ecdsa.VerifyASN1(k, h.Sum(nil), sig)
	}
	return false
}

// oldCosignatureKeyHash is the C2SP tlog-cosignature key ID:
// SHA-256(name || "\n" || 0x04 || key)[:4].
func oldCosignatureKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', oldSigTypeCosignature})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// oldCosignedMessage is what a tlog-cosignature/v1 signature covers.
func oldCosignedMessage(t uint64, body []byte) []byte {
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t)
	return append(m, body...)
}

// oldCosigVerifier verifies C2SP tlog-cosignature/v1 signatures.
type oldCosigVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// oldNewCosignatureVerifier returns the note verifier for cosignatures
// (C2SP tlog-cosignature/v1) by the witness named name with key pub.
func oldNewCosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	if !oldValidName(name) {
		return nil, fmt.Errorf("invalid witness name %q", name)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("witness key is not an Ed25519 public key")
	}
	return &oldCosigVerifier{name: name, hash: oldCosignatureKeyHash(name, pub), pub: pub}, nil
}

func (v *oldCosigVerifier) Name() string    { return v.name }
func (v *oldCosigVerifier) KeyHash() uint32 { return v.hash }

func (v *oldCosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	return ed25519.Verify(v.pub, oldCosignedMessage(t, msg), sig[8:])
}

// oldWitness cosigns checkpoints of logs it has checked for consistency.
type oldWitness struct {
	name string
	key  ed25519.PrivateKey
	hash uint32
	now  func() time.Time
}

// oldNewWitness returns a witness named name signing with key.
func oldNewWitness(name string, key ed25519.PrivateKey) (*oldWitness, error) {
	if !oldValidName(name) {
		return nil, fmt.Errorf("invalid witness name %q", name)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("witness key is not an Ed25519 private key")
	}
	pub := key.Public().(ed25519.PublicKey)
	return &oldWitness{name: name, key: key, hash: oldCosignatureKeyHash(name, pub), now: time.Now}, nil
}

// Verifier returns the note verifier of this witness's cosignatures, for
// Options.Witnesses.
func (w *oldWitness) Verifier() note.Verifier {
	v, _ := oldNewCosignatureVerifier(w.name, w.key.Public().(ed25519.PublicKey))
	return v
}

func (w *oldWitness) Name() string    { return w.name }
func (w *oldWitness) KeyHash() uint32 { return w.hash }

// Sign implements note.Signer: the signature is the 8-byte big-endian
// timestamp followed by the Ed25519 signature of the cosigned message.
func (w *oldWitness) Sign(msg []byte) ([]byte, error) {
	t := uint64(w.now().Unix())
	sig := binary.BigEndian.AppendUint64(nil, t)
	return append(sig, ed25519.Sign(w.key, oldCosignedMessage(t, msg))...), nil
}

// oldCanonicalEntry validates req (the signature must verify with the
// request's key or certificate) and returns the log entry it becomes: the
// canonicalized (RFC 8785) protojson of a rekor v2 Entry, which is the leaf
// stored in the log, and its kind and version. Errors wrap ErrInvalidEntry.
func oldCanonicalEntry(req *CreateEntryRequest) ([]byte, *protorekor.KindVersion, error) {
	var entry *rekorpb.Entry
	var err error
	switch spec := req.GetSpec().(type) {
	case *rekorpb.CreateEntryRequest_HashedRekordRequestV002:
		entry, err = oldHashedRekordEntry(spec.HashedRekordRequestV002)
	case *rekorpb.CreateEntryRequest_DsseRequestV002:
		entry, err = oldDsseEntry(spec.DsseRequestV002)
	default:
		err = invalid("request has neither hashedRekordRequestV002 nor dsseRequestV002")
	}
	if err != nil {
		return nil, nil, err
	}
	body, ok := canonicalHashedRekord(entry)
	if !ok {
		if body, err = canonicalize(entry); err != nil {
			return nil, nil, err
		}
	}
	return body, &protorekor.KindVersion{Kind: entry.Kind, Version: entry.ApiVersion}, nil
}

func oldHashedRekordEntry(hr *rekorpb.HashedRekordRequestV002) (*rekorpb.Entry, error) {
	if hr == nil {
		return nil, invalid("empty hashedrekord request")
	}
	sig := hr.GetSignature()
	if len(sig.GetContent()) == 0 {
		return nil, invalid("missing signature")
	}
	if len(hr.GetDigest()) == 0 {
		return nil, invalid("missing digest")
	}
	pub, v, err := verifierKey(sig.GetVerifier())
	if err != nil {
		return nil, err
	}
	// The key details must be the default ones for the key: that is what
	// sigstore-go assumes when it rebuilds the entry to verify inclusion.
	want, err := signature.GetDefaultAlgorithmDetails(pub, options.WithED25519ph())
	if err != nil {
		return nil, invalid("unsupported key: %v", err)
	}
	if v.KeyDetails != want.GetSignatureAlgorithm() {
		return nil, invalid("key details %s do not match the key (want %s)", v.KeyDetails, want.GetSignatureAlgorithm())
	}
	hf := want.GetHashType()
	if len(hr.Digest) != hf.Size() {
		return nil, invalid("digest is %d bytes, want %d for %s", len(hr.Digest), hf.Size(), hf)
	}
	sv, err := signature.LoadVerifierWithOpts(pub, options.WithED25519ph(), options.WithHash(hf))
	if err != nil {
		return nil, invalid("couldn't load verifier: %v", err)
	}
	if err := sv.VerifySignature(bytes.NewReader(sig.Content), nil,
		options.WithDigest(hr.Digest), options.WithCryptoSignerOpts(hf)); err != nil {
		return nil, invalid("signature does not verify: %v", err)
	}
	return &rekorpb.Entry{
		Kind:       KindHashedRekord,
		ApiVersion: APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
			Data:      &protocommon.HashOutput{Algorithm: want.GetProtoHashType(), Digest: hr.Digest},
			Signature: &rekorpb.Signature{Content: sig.Content, Verifier: v},
		}}},
	}, nil
}

// oldMaxDSSEParties bounds the signatures and verifiers of one DSSE request.
const oldMaxDSSEParties = 16

func oldDsseEntry(d *rekorpb.DSSERequestV002) (*rekorpb.Entry, error) {
	env := d.GetEnvelope()
	if env == nil {
		return nil, invalid("missing envelope")
	}
	if env.PayloadType == "" || len(env.Payload) == 0 {
		return nil, invalid("envelope has no payload or payloadType")
	}
	if len(env.Signatures) == 0 || len(d.GetVerifiers()) == 0 {
		return nil, invalid("dsse request needs signatures and verifiers")
	}
	if len(env.Signatures) > oldMaxDSSEParties || len(d.Verifiers) > oldMaxDSSEParties {
		return nil, invalid("too many signatures or verifiers (max %d)", oldMaxDSSEParties)
	}
	type party struct {
		v  *rekorpb.Verifier
		sv signature.Verifier
	}
	parties := make([]party, 0, len(d.Verifiers))
	for _, pv := range d.Verifiers {
		pub, v, err := verifierKey(pv)
		if err != nil {
			return nil, err
		}
		details, err := signature.GetDefaultAlgorithmDetails(pub)
		if err != nil {
			return nil, invalid("unsupported key: %v", err)
		}
		if v.KeyDetails == protocommon.PublicKeyDetails_PUBLIC_KEY_DETAILS_UNSPECIFIED {
			v.KeyDetails = details.GetSignatureAlgorithm()
		}
		sv, err := signature.LoadVerifier(pub, details.GetHashType())
		if err != nil {
			return nil, invalid("couldn't load verifier: %v", err)
		}
		parties = append(parties, party{v: v, sv: sv})
	}
	pae := ssldsse.PAE(env.PayloadType, env.Payload)
	used := make([]bool, len(parties))
	sigs := make([]*rekorpb.Signature, 0, len(env.Signatures))
	for i, s := range env.Signatures {
		if len(s.GetSig()) == 0 {
			return nil, invalid("signature %d is empty", i)
		}
		found := false
		for j, p := range parties {
			if p.sv.VerifySignature(bytes.NewReader(s.Sig), bytes.NewReader(pae)) == nil {
				sigs = append(sigs, &rekorpb.Signature{Content: s.Sig, Verifier: p.v})
				used[j], found = true, true
				break
			}
		}
		if !found {
			return nil, invalid("signature %d does not verify with any verifier", i)
		}
	}
	for j, u := range used {
		if !u {
			return nil, invalid("verifier %d verifies no signature", j)
		}
	}
	sum := sha256.Sum256(env.Payload)
	return &rekorpb.Entry{
		Kind:       KindDSSE,
		ApiVersion: APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_DsseV002{DsseV002: &rekorpb.DSSELogEntryV002{
			PayloadHash: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
			Signatures:  sigs,
		}}},
	}, nil
}
