package tlog

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/rekor-tiles/v2/pkg/types/hashedrekord"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
)

// CreateEntryRequest is the Rekor v2 write request. The log accepts the
// hashedrekord v0.0.2 request only; a DSSE v0.0.2 request (deprecated
// upstream, still sent by cosign's attest-blob) is refused, as rekor-tiles
// refuses it: see [CanonicalEntry].
type CreateEntryRequest = rekorpb.CreateEntryRequest

// ErrInvalidEntry is returned (wrapped) for a request that is malformed, too
// large, or whose signature does not verify. Nothing is stored for it; the
// HTTP API answers 400.
var ErrInvalidEntry = errors.New("invalid entry")

// Entry kinds and versions. The log writes only KindHashedRekord entries;
// logs written before custody stopped writing the deprecated DSSE type
// also hold KindDSSE entries, which readers still parse.
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

// ErrNotHashedRekord is wrapped by CanonicalEntry's error for a request of
// another type than hashedrekord (a DSSE v0.0.2 request). Its text is
// rekor-tiles v2.3.0's answer to such a request.
var ErrNotHashedRekord = errors.New("invalid type, must be hashedrekord")

// CanonicalEntry validates req (the signature must verify with the
// request's key or certificate) and returns the log entry it becomes: the
// canonicalized (RFC 8785) protojson of a rekor v2 hashedrekord Entry,
// which is the leaf stored in the log, and its kind and version.
//
// Only hashedrekord requests are accepted. A DSSE v0.0.2 request is
// refused (ErrNotHashedRekord), as rekor-tiles v2.3.0 refuses it: Rekor v2
// verifiers (sigstore-go, custody) have no DSSE v0.0.2 implementation, so
// an entry of that type, or a hashedrekord the client did not ask for,
// would be logged and then refused by every verifier. A client logs an
// envelope as the hashedrekord of its PAE, as sigstore-go does. Errors
// wrap ErrInvalidEntry.
func CanonicalEntry(req *CreateEntryRequest) ([]byte, *protorekor.KindVersion, error) {
	var hr *rekorpb.HashedRekordRequestV002
	switch spec := req.GetSpec().(type) {
	case *rekorpb.CreateEntryRequest_HashedRekordRequestV002:
		hr = spec.HashedRekordRequestV002
	case *rekorpb.CreateEntryRequest_DsseRequestV002:
		return nil, nil, fmt.Errorf("%w: %w: a dsse v0.0.2 request is not logged; log the envelope's signature "+
			"as a hashedrekord of its PAE (sigstore-go does; cosign attest-blob does not yet)", ErrInvalidEntry, ErrNotHashedRekord)
	default:
		return nil, nil, invalid("request has neither hashedRekordRequestV002 nor dsseRequestV002")
	}
	entry, err := hashedRekordEntry(hr)
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

// hashedRekordEntry validates hr and returns its entry with rekor-tiles'
// hashedrekord.ToLogEntry, after custody's stricter rules: the key is
// re-encoded as PKIX DER (verifierKey), and the key details must be the
// default ones for the key, which is what sigstore-go assumes when it
// rebuilds the entry to verify inclusion.
func hashedRekordEntry(hr *rekorpb.HashedRekordRequestV002) (*rekorpb.Entry, error) {
	if hr == nil {
		return nil, invalid("empty hashedrekord request")
	}
	pub, v, err := verifierKey(hr.GetSignature().GetVerifier())
	if err != nil {
		return nil, err
	}
	want, err := signature.GetDefaultAlgorithmDetails(pub, options.WithED25519ph())
	if err != nil {
		return nil, invalid("unsupported key: %v", err)
	}
	if v.KeyDetails != want.GetSignatureAlgorithm() {
		return nil, invalid("key details %s do not match the key (want %s)", v.KeyDetails, want.GetSignatureAlgorithm())
	}
	registry, err := entryAlgorithms()
	if err != nil {
		return nil, err
	}
	entry, err := hashedrekord.ToLogEntry(&rekorpb.HashedRekordRequestV002{
		Digest:    hr.Digest,
		Signature: &rekorpb.Signature{Content: hr.GetSignature().GetContent(), Verifier: v},
	}, registry)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return entry, nil
}

// entryAlgorithms is the algorithm registry of hashedrekord entries: every
// key type's default algorithm (the only ones hashedRekordEntry accepts).
var entryAlgorithms = sync.OnceValues(func() (*signature.AlgorithmRegistryConfig, error) {
	return signature.NewAlgorithmRegistryConfig([]protocommon.PublicKeyDetails{
		protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
		protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384,
		protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512,
		protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256,
		protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256,
		protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256,
		protocommon.PublicKeyDetails_PKIX_ED25519_PH,
	})
})
