package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"net/http/httptest"
	"testing"
	"time"

	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// testOrigin is the host name of httptest servers: sigstore-go names the
// checkpoint verifier after the host of the log's baseUrl.
const testOrigin = "127.0.0.1"

func newECDSAKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEd25519Key(t testing.TB) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openLog(t testing.TB, dir string, key crypto.Signer) *Log {
	t.Helper()
	l, err := Open(context.Background(), Options{Dir: dir, Origin: testOrigin, Signer: key,
		BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSigstoreGoRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		logKey func(testing.TB) crypto.Signer
	}{
		{"ecdsa log key", newECDSAKey},
		{"ed25519 log key", newEd25519Key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), tc.logKey(t))
			defer l.Close()
			srv := httptest.NewServer(l.Handler())
			defer srv.Close()

			tr, err := root.NewTrustedRootFromProtobuf(&prototrustroot.TrustedRoot{
				MediaType: root.TrustedRootMediaType01,
				Tlogs:     []*prototrustroot.TransparencyLogInstance{l.TrustedRootInstance(srv.URL)},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, content := range []struct {
				name string
				c    sign.Content
				art  []byte
			}{
				{"message signature", &sign.PlainData{Data: []byte("artifact bytes")}, []byte("artifact bytes")},
				{"dsse", &sign.DSSEData{Data: []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), PayloadType: "application/vnd.in-toto+json"}, nil},
			} {
				t.Run(content.name, func(t *testing.T) {
					kp, err := sign.NewEphemeralKeypair(nil)
					if err != nil {
						t.Fatal(err)
					}
					b, err := sign.Bundle(content.c, kp, sign.BundleOptions{
						TransparencyLogs: []sign.Transparency{sign.NewRekor(&sign.RekorOptions{BaseURL: srv.URL, Version: 2})},
						Context:          context.Background(),
					})
					if err != nil {
						t.Fatalf("sign.Bundle: %v", err)
					}
					tle := b.VerificationMaterial.TlogEntries[0]
					if tle.IntegratedTime != 0 || tle.KindVersion.Kind != KindHashedRekord || !bytes.Equal(tle.LogId.KeyId, l.LogID()) {
						t.Errorf("entry = %v", tle)
					}
					pub := kp.GetPublicKey()
					sv, err := signature.LoadVerifier(pub, crypto.SHA256)
					if err != nil {
						t.Fatal(err)
					}
					keys := root.NewTrustedPublicKeyMaterialFromMapping(map[string]*root.ExpiringKey{
						string(kp.GetHint()): root.NewExpiringKey(sv, time.Time{}, time.Time{}),
					})
					v, err := verify.NewVerifier(root.TrustedMaterialCollection{tr, keys},
						verify.WithTransparencyLog(1), verify.WithCurrentTime())
					if err != nil {
						t.Fatal(err)
					}
					sb, err := bundle.NewBundle(b)
					if err != nil {
						t.Fatal(err)
					}
					art := verify.WithoutArtifactUnsafe()
					if content.art != nil {
						sum := sha256.Sum256(content.art)
						art = verify.WithArtifactDigest("sha256", sum[:])
					}
					if _, err := v.Verify(sb, verify.NewPolicy(art, verify.WithKey())); err != nil {
						t.Fatalf("verify: %v", err)
					}

					// A bundle whose entry is for another log index must fail.
					tle.LogIndex++
					tle.InclusionProof.LogIndex++
					if _, err := v.Verify(sb, verify.NewPolicy(art, verify.WithKey())); err == nil {
						t.Error("verify accepted a tampered log index")
					}
				})
			}
		})
	}
}
