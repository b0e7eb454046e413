package tlog

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

func hashedRekordLogEntry(alg protocommon.HashAlgorithm, digest, content []byte, v *rekorpb.Verifier) *rekorpb.Entry {
	return &rekorpb.Entry{
		Kind:       KindHashedRekord,
		ApiVersion: APIVersion,
		Spec: &rekorpb.Spec{Spec: &rekorpb.Spec_HashedRekordV002{HashedRekordV002: &rekorpb.HashedRekordLogEntryV002{
			Data:      &protocommon.HashOutput{Algorithm: alg, Digest: digest},
			Signature: &rekorpb.Signature{Content: content, Verifier: v},
		}}},
	}
}

// TestCanonicalHashedRekord holds the direct encoding of hashedrekord
// entries to the generic protojson + RFC 8785 path, for every key type
// and both verifier forms, and checks the entries it must leave to it.
func TestCanonicalHashedRekord(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p256.Public(), p256)
	if err != nil {
		t.Fatal(err)
	}
	der := func(pub any) []byte {
		b, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pk := func(raw []byte, d protocommon.PublicKeyDetails) *rekorpb.Verifier {
		return &rekorpb.Verifier{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: raw}}, KeyDetails: d}
	}
	sig := []byte("\x30\x45signature bytes that need base64 padding+/")
	covered := []*rekorpb.Entry{
		hashedRekordLogEntry(protocommon.HashAlgorithm_SHA2_256, make([]byte, 32), sig, pk(der(p256.Public()), protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)),
		hashedRekordLogEntry(protocommon.HashAlgorithm_SHA2_384, make([]byte, 48), sig, pk(der(p384.Public()), protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384)),
		hashedRekordLogEntry(protocommon.HashAlgorithm_SHA2_512, make([]byte, 64), sig, pk(der(p521.Public()), protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512)),
		hashedRekordLogEntry(protocommon.HashAlgorithm_SHA2_512, make([]byte, 64), sig, pk(der(edPub), protocommon.PublicKeyDetails_PKIX_ED25519_PH)),
		hashedRekordLogEntry(protocommon.HashAlgorithm_SHA2_256, []byte{0xff, 0xfe, 0xfd}, []byte{1}, &rekorpb.Verifier{
			Verifier:   &rekorpb.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: cert}},
			KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}),
	}
	for i, e := range covered {
		t.Run(fmt.Sprint("covered ", i), func(t *testing.T) {
			got, ok := canonicalHashedRekord(e)
			if !ok {
				t.Fatal("not covered")
			}
			want, err := canonicalize(e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	good := func() *rekorpb.Entry {
		return hashedRekordLogEntry(protocommon.HashAlgorithm_SHA2_256, make([]byte, 32), sig,
			pk(der(p256.Public()), protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256))
	}
	left := map[string]func(e *rekorpb.Entry){
		"zero algorithm":    func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Data.Algorithm = 0 },
		"unnamed algorithm": func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Data.Algorithm = 999 },
		"zero key details":  func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Signature.Verifier.KeyDetails = 0 },
		"empty digest":      func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Data.Digest = nil },
		"empty content":     func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Signature.Content = nil },
		"no verifier key":   func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Signature.Verifier.Verifier = nil },
		"no data":           func(e *rekorpb.Entry) { e.GetSpec().GetHashedRekordV002().Data = nil },
		"kind needs escape": func(e *rekorpb.Entry) { e.Kind = `a"b` },
		"empty api version": func(e *rekorpb.Entry) { e.ApiVersion = "" },
		"dsse":              func(e *rekorpb.Entry) { e.Spec = &rekorpb.Spec{Spec: &rekorpb.Spec_DsseV002{}} },
		"no spec":           func(e *rekorpb.Entry) { e.Spec = nil },
	}
	for name, mutate := range left {
		t.Run(name, func(t *testing.T) {
			e := good()
			mutate(e)
			if b, ok := canonicalHashedRekord(e); ok {
				t.Errorf("covered: %s", b)
			}
		})
	}
}

func FuzzCanonicalHashedRekord(f *testing.F) {
	f.Add("hashedrekord", "0.0.2", int32(1), []byte("digest"), []byte("sig"), []byte("key"), int32(5), false)
	f.Add("hashedrekord", "0.0.2", int32(3), []byte{0}, []byte{0xff}, []byte("cert"), int32(7), true)
	f.Fuzz(func(t *testing.T, kind, version string, alg int32, digest, content, raw []byte, details int32, isCert bool) {
		v := &rekorpb.Verifier{KeyDetails: protocommon.PublicKeyDetails(details)}
		if isCert {
			v.Verifier = &rekorpb.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: raw}}
		} else {
			v.Verifier = &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: raw}}
		}
		e := hashedRekordLogEntry(protocommon.HashAlgorithm(alg), digest, content, v)
		e.Kind, e.ApiVersion = kind, version
		got, ok := canonicalHashedRekord(e)
		if !ok {
			return
		}
		want, err := canonicalize(e)
		if err != nil {
			t.Fatalf("covered entry the generic path refuses: %v", err)
		}
		if string(got) != string(want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}
