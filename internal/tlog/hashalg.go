package tlog

import (
	"crypto"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// HashFunc is the crypto.Hash of a protobuf-specs digest algorithm, as
// hashedrekord entries name it. ok is false for any algorithm but SHA2-256,
// SHA2-384 and SHA2-512 (unspecified, SHA3, or a value unknown to this
// build).
func HashFunc(a protocommon.HashAlgorithm) (h crypto.Hash, ok bool) {
	switch a {
	case protocommon.HashAlgorithm_SHA2_256:
		return crypto.SHA256, true
	case protocommon.HashAlgorithm_SHA2_384:
		return crypto.SHA384, true
	case protocommon.HashAlgorithm_SHA2_512:
		return crypto.SHA512, true
	}
	return 0, false
}
