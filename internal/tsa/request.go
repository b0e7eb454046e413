package tsa

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// MaxRequestSize is the largest TimeStampReq, in bytes, the authority reads.
const MaxRequestSize = 64 << 10

// ErrMalformedRequest is returned (wrapped) by Authority.Timestamp for a
// request that is not a valid RFC 3161 TimeStampReq this authority accepts:
// bad DER, a version other than 1, an unsupported hash algorithm, a digest of
// the wrong length, an unknown policy or a critical extension. The client
// must fix its request; Handler answers it with HTTP 400.
var ErrMalformedRequest = errors.New("malformed timestamp request")

var (
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// timeStampReq is TimeStampReq of RFC 3161 section 2.4.1.
type timeStampReq struct {
	Version        int
	MessageImprint messageImprint
	ReqPolicy      asn1.ObjectIdentifier `asn1:"optional"`
	Nonce          *big.Int              `asn1:"optional"`
	CertReq        bool                  `asn1:"optional,default:false"`
	Extensions     []pkix.Extension      `asn1:"tag:0,optional"`
}

type messageImprint struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	HashedMessage []byte
}

// request is a validated TimeStampReq.
type request struct {
	hash    crypto.Hash
	digest  []byte
	policy  asn1.ObjectIdentifier // nil when the client asked for none
	nonce   *big.Int              // nil when absent
	certReq bool
}

// parseRequest decodes and validates a DER TimeStampReq. Every error wraps
// ErrMalformedRequest.
func parseRequest(der []byte) (*request, error) {
	if len(der) > MaxRequestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedRequest, MaxRequestSize)
	}
	var req timeStampReq
	rest, err := asn1.Unmarshal(der, &req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedRequest, err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: trailing data after request", ErrMalformedRequest)
	}
	if req.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrMalformedRequest, req.Version)
	}
	alg := req.MessageImprint.HashAlgorithm
	var h crypto.Hash
	switch {
	case alg.Algorithm.Equal(oidSHA256):
		h = crypto.SHA256
	case alg.Algorithm.Equal(oidSHA384):
		h = crypto.SHA384
	case alg.Algorithm.Equal(oidSHA512):
		h = crypto.SHA512
	default:
		return nil, fmt.Errorf("%w: unsupported hash algorithm %v (use SHA-256, SHA-384 or SHA-512)", ErrMalformedRequest, alg.Algorithm)
	}
	// RFC 5754: parameters are absent or NULL.
	if len(alg.Parameters.FullBytes) > 0 && !isNull(alg.Parameters.FullBytes) {
		return nil, fmt.Errorf("%w: hash algorithm parameters must be absent or NULL", ErrMalformedRequest)
	}
	if got := len(req.MessageImprint.HashedMessage); got != h.Size() {
		return nil, fmt.Errorf("%w: %v digest is %d bytes, want %d", ErrMalformedRequest, h, got, h.Size())
	}
	if req.Nonce != nil && req.Nonce.Sign() < 0 {
		return nil, fmt.Errorf("%w: negative nonce", ErrMalformedRequest)
	}
	for _, ext := range req.Extensions {
		if ext.Critical {
			return nil, fmt.Errorf("%w: unsupported critical extension %v", ErrMalformedRequest, ext.Id)
		}
	}
	return &request{
		hash:    h,
		digest:  req.MessageImprint.HashedMessage,
		policy:  req.ReqPolicy,
		nonce:   req.Nonce,
		certReq: req.CertReq,
	}, nil
}

func isNull(b []byte) bool {
	return len(b) == 2 && b[0] == asn1.TagNull && b[1] == 0
}
