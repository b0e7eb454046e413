// Package tsa is an RFC 3161 time-stamp authority
// (https://www.rfc-editor.org/rfc/rfc3161) for custody serve.
//
// An Authority answers DER TimeStampReq messages with DER TimeStampResp
// messages whose TimeStampToken is a CMS SignedData over a TSTInfo, signed by
// a key whose certificate carries the critical id-kp-timeStamping extended key
// usage (RFC 3161 section 2.3). The tokens verify with sigstore-go given a
// trusted_root.json whose timestampAuthorities entry holds the chain returned
// by Chain (see package trust).
//
// Handler serves the protocol over HTTP (RFC 3161 section 3.4). Mount it at
// /api/v1/timestamp, the path of Sigstore's timestamp authority, and point
// clients at the full URL, e.g. sigstore-go's
// sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: "https://host/api/v1/timestamp"}).
package tsa

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/digitorus/timestamp"
)

// Path is where custody serve mounts Handler; Sigstore's timestamp authority
// uses the same path.
const Path = "/api/v1/timestamp"

// DefaultPolicy returns the TSA policy OID put in every TSTInfo unless
// WithPolicy says otherwise: the policy OID of Sigstore's timestamp authority
// (1.3.6.1.4.1.57264.2), whose semantics custody's authority follows.
func DefaultPolicy() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2}
}

var (
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKPTimeStamping    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	errNoTimeStampingEKU = errors.New("leaf certificate must have exactly the critical id-kp-timeStamping extended key usage (RFC 3161 section 2.3)")
)

// Option configures an Authority.
type Option func(*config)

type config struct {
	clock  func() time.Time
	policy asn1.ObjectIdentifier
	log    *slog.Logger
}

// WithClock sets the source of genTime. The default is time.Now. genTime is
// truncated to whole seconds and the token claims an accuracy of one second.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.clock = now }
}

// WithPolicy sets the TSA policy OID put in every token. Requests that ask for
// another policy are rejected. The default is DefaultPolicy.
func WithPolicy(oid asn1.ObjectIdentifier) Option {
	return func(c *config) { c.policy = slices.Clone(oid) }
}

// WithLogger sets the logger; nil (the default) discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// Authority issues RFC 3161 time-stamp tokens. It is safe for concurrent use.
type Authority struct {
	signer crypto.Signer
	hash   crypto.Hash // digest of the CMS signature
	chain  []*x509.Certificate
	clock  func() time.Time
	policy asn1.ObjectIdentifier
	log    *slog.Logger
}

// NewAuthority returns an Authority that signs with signer and presents chain,
// ordered leaf first and root last. signer must be an ECDSA P-256 or P-384 key
// or an RSA key (2048 bits or more) whose public key is the leaf's. The leaf
// must have exactly one extended key usage, id-kp-timeStamping, marked
// critical, and each certificate must be signed by the next.
func NewAuthority(signer crypto.Signer, chain []*x509.Certificate, opts ...Option) (*Authority, error) {
	c := config{clock: time.Now, policy: DefaultPolicy()}
	for _, o := range opts {
		o(&c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		return nil, errors.New("clock is nil")
	}
	if len(c.policy) < 2 {
		return nil, errors.New("policy OID must have at least two arcs")
	}
	if signer == nil {
		return nil, errors.New("signer is nil")
	}
	if len(chain) == 0 {
		return nil, errors.New("certificate chain is empty")
	}
	h, err := signatureHash(signer.Public())
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !publicKeysEqual(leaf.PublicKey, signer.Public()) {
		return nil, errors.New("leaf certificate does not certify the signer's public key")
	}
	if err := checkTimeStampingEKU(leaf); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("certificate %d of the chain is not signed by certificate %d: %w", i, i+1, err)
		}
	}
	return &Authority{
		signer: signer,
		hash:   h,
		chain:  slices.Clone(chain),
		clock:  c.clock,
		policy: c.policy,
		log:    c.log,
	}, nil
}

// Chain returns the certificate chain, leaf first, as given to NewAuthority.
// Put it in the trust root's timestampAuthorities entry for this authority.
func (a *Authority) Chain() []*x509.Certificate {
	return slices.Clone(a.chain)
}

// Timestamp answers the DER TimeStampReq requestDER with a DER TimeStampResp
// granting a token over the request's message imprint. The token echoes the
// request's nonce and includes the signing certificate only when the request
// sets certReq. Its serial number is a fresh 160-bit random integer (drawn by
// github.com/digitorus/timestamp from crypto/rand), so serial numbers are
// unique without any state.
//
// A request that is not acceptable returns an error wrapping
// ErrMalformedRequest; any other error is the authority's fault (its signer
// failed, or its certificate is not valid at the current time).
func (a *Authority) Timestamp(ctx context.Context, requestDER []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req, err := parseRequest(requestDER)
	if err != nil {
		return nil, err
	}
	if req.policy != nil && !req.policy.Equal(a.policy) {
		return nil, fmt.Errorf("%w: unsupported policy %v (this authority uses %v)", ErrMalformedRequest, req.policy, a.policy)
	}
	now := a.clock().UTC().Truncate(time.Second)
	leaf := a.chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tsa certificate is not valid at %s (valid %s to %s)",
			now.Format(time.RFC3339), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     req.hash,
		HashedMessage:     req.digest,
		Time:              now,
		Accuracy:          time.Second,
		Policy:            a.policy,
		Nonce:             req.nonce,
		AddTSACertificate: req.certReq,
	}
	resp, err := ts.CreateResponseWithOpts(leaf, a.signer, a.hash)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign timestamp: %w", err)
	}
	a.log.Debug("issued timestamp", slog.Time("genTime", now), slog.String("hash", req.hash.String()))
	return resp, nil
}

// signatureHash picks the digest of the CMS signature for a public key.
func signatureHash(pub crypto.PublicKey) (crypto.Hash, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, nil
		}
		return 0, fmt.Errorf("unsupported ECDSA curve %s (use P-256 or P-384)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return 0, fmt.Errorf("RSA key of %d bits is too small (use 2048 or more)", k.N.BitLen())
		}
		return crypto.SHA256, nil
	}
	return 0, fmt.Errorf("unsupported key type %T (use ECDSA P-256, P-384 or RSA)", pub)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func checkTimeStampingEKU(leaf *x509.Certificate) error {
	critical := false
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidExtKeyUsage) {
			critical = ext.Critical
		}
	}
	if !critical || len(leaf.UnknownExtKeyUsage) != 0 || len(leaf.ExtKeyUsage) != 1 ||
		leaf.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
		return errNoTimeStampingEKU
	}
	return nil
}

// readLimited reads at most MaxRequestSize bytes from r, failing with an error
// wrapping ErrMalformedRequest when there are more.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxRequestSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRequestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedRequest, MaxRequestSize)
	}
	return b, nil
}
