package tlog

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
)

// CreateEntryRequest is the Rekor v2 write request: a hashedrekord v0.0.2
// or a (deprecated upstream) DSSE v0.0.2 request.
type CreateEntryRequest = rekorpb.CreateEntryRequest

// ErrInvalidEntry is returned (wrapped) for a request that is malformed, too
// large, or whose signature does not verify. Nothing is stored for it; the
// HTTP API answers 400.
var ErrInvalidEntry = errors.New("invalid entry")

// Entry kinds and versions written by this log.
const (
	KindHashedRekord = "hashedrekord"
	KindDSSE         = "dsse"
	APIVersion       = "0.0.2"
)

// DefaultMaxEntryBytes is the default limit on the size of a request.
const DefaultMaxEntryBytes = 1 << 20

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEntry, fmt.Sprintf(format, args...))
}

// ParseCreateEntryRequest decodes the JSON (protojson) form of a Rekor v2
// CreateEntryRequest, rejecting unknown fields and bodies over maxBytes
// (0 means DefaultMaxEntryBytes). It does not verify signatures; see
// [CanonicalEntry].
func ParseCreateEntryRequest(body []byte, maxBytes int) (*CreateEntryRequest, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxEntryBytes
	}
	if len(body) > maxBytes {
		return nil, invalid("request of %d bytes is over the limit of %d", len(body), maxBytes)
	}
	req := &CreateEntryRequest{}
	if err := protojson.Unmarshal(body, req); err != nil {
		return nil, invalid("couldn't decode request: %v", err)
	}
	if req.GetSpec() == nil {
		return nil, invalid("request has neither hashedRekordRequestV002 nor dsseRequestV002")
	}
	return req, nil
}

// CanonicalEntry validates req (the signature must verify with the
// request's key or certificate) and returns the log entry it becomes: the
// canonicalized (RFC 8785) protojson of a rekor v2 Entry, which is the leaf
// stored in the log, and its kind and version. Errors wrap ErrInvalidEntry.
func CanonicalEntry(req *CreateEntryRequest) ([]byte, *protorekor.KindVersion, error) {
	var entry *rekorpb.Entry
	var err error
	switch spec := req.GetSpec().(type) {
	case *rekorpb.CreateEntryRequest_HashedRekordRequestV002:
		entry, err = hashedRekordEntry(spec.HashedRekordRequestV002)
	case *rekorpb.CreateEntryRequest_DsseRequestV002:
		entry, err = dsseEntry(spec.DsseRequestV002)
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

func canonicalize(entry *rekorpb.Entry) ([]byte, error) {
	j, err := protojson.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("couldn't marshal entry: %w", err)
	}
	c, err := jsoncanonicalizer.Transform(j)
	if err != nil {
		return nil, fmt.Errorf("couldn't canonicalize entry: %w", err)
	}
	return c, nil
}

// verifierKey parses the key or certificate of v and returns the public key
// and a normalized copy of v (public keys re-encoded as PKIX DER, which is
// what verifiers reconstruct from trusted material).
func verifierKey(v *rekorpb.Verifier) (crypto.PublicKey, *rekorpb.Verifier, error) {
	if v == nil {
		return nil, nil, invalid("missing verifier")
	}
	switch k := v.GetVerifier().(type) {
	case *rekorpb.Verifier_PublicKey:
		raw := k.PublicKey.GetRawBytes()
		if len(raw) == 0 {
			return nil, nil, invalid("missing public key bytes")
		}
		pub, err := x509.ParsePKIXPublicKey(raw)
		if err != nil {
			return nil, nil, invalid("couldn't parse public key: %v", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, nil, invalid("couldn't encode public key: %v", err)
		}
		return pub, &rekorpb.Verifier{
			Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
			KeyDetails: v.GetKeyDetails(),
		}, nil
	case *rekorpb.Verifier_X509Certificate:
		raw := k.X509Certificate.GetRawBytes()
		if len(raw) == 0 {
			return nil, nil, invalid("missing certificate bytes")
		}
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, nil, invalid("couldn't parse certificate: %v", err)
		}
		return cert.PublicKey, &rekorpb.Verifier{
			Verifier: &rekorpb.Verifier_X509Certificate{
				X509Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw},
			},
			KeyDetails: v.GetKeyDetails(),
		}, nil
	default:
		return nil, nil, invalid("verifier has neither publicKey nor x509Certificate")
	}
}

func hashedRekordEntry(hr *rekorpb.HashedRekordRequestV002) (*rekorpb.Entry, error) {
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

// maxDSSEParties bounds the signatures and verifiers of one DSSE request.
const maxDSSEParties = 16

func dsseEntry(d *rekorpb.DSSERequestV002) (*rekorpb.Entry, error) {
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
	if len(env.Signatures) > maxDSSEParties || len(d.Verifiers) > maxDSSEParties {
		return nil, invalid("too many signatures or verifiers (max %d)", maxDSSEParties)
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
