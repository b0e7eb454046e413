package tlog

import (
	"crypto"
	"testing"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

func TestHashFunc(t *testing.T) {
	t.Parallel()
	for a, want := range map[protocommon.HashAlgorithm]crypto.Hash{
		protocommon.HashAlgorithm_SHA2_256:                   crypto.SHA256,
		protocommon.HashAlgorithm_SHA2_384:                   crypto.SHA384,
		protocommon.HashAlgorithm_SHA2_512:                   crypto.SHA512,
		protocommon.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED: 0,
		protocommon.HashAlgorithm_SHA3_256:                   0,
		protocommon.HashAlgorithm(99):                        0,
	} {
		h, ok := HashFunc(a)
		if h != want || ok != (want != 0) {
			t.Errorf("HashFunc(%v) = %v, %v; want %v", a, h, ok, want)
		}
	}
}
