// Package benchdata makes the entries and records the server benchmarks
// fill a server with.
package benchdata

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/custody-dev/custody/internal/store"
)

// HashedRekord is the Rekor v2 request a client sends to log a random
// artifact's digest signed by k, whose PKIX public key is der.
func HashedRekord(k *ecdsa.PrivateKey, der []byte) (*rekorpb.CreateEntryRequest, error) {
	var art [32]byte
	rand.Read(art[:])
	d := sha256.Sum256(art[:])
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		return nil, err
	}
	return &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: d[:],
			Signature: &rekorpb.Signature{Content: sig, Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}}}}}, nil
}

// Deployment is the ith deployment of "app" to prod.
func Deployment(i int64) *store.Deployment {
	sum := sha256.Sum256(fmt.Appendf(nil, "app %d", i))
	return &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: "sha256:" + hex.EncodeToString(sum[:]),
		Name: "app", Actor: "ci", Time: time.Now()}
}
