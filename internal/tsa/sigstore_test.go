package tsa

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// TestSigstoreInterop signs with sigstore-go, timestamping at an httptest
// server running Handler, and verifies with sigstore-go's verifier.
func TestSigstoreInterop(t *testing.T) {
	// sigstore-go checks the token against the current time, so the chain
	// must be valid now.
	now := time.Now()
	tsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, rootCert, _, err := GenerateChain(tsaKey, "custody interop tsa", now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthority(tsaKey, []*x509.Certificate{leaf, rootCert})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+Path, a.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	keypair, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	artifact := []byte("custody artifact")
	pb, err := sign.Bundle(&sign.PlainData{Data: artifact}, keypair, sign.BundleOptions{
		TimestampAuthorities: []*sign.TimestampAuthority{
			sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: srv.URL + Path, Timeout: 10 * time.Second}),
		},
	})
	if err != nil {
		t.Fatalf("sign.Bundle: %v", err)
	}
	b := &bundle.Bundle{Bundle: pb}

	v, err := signature.LoadDefaultVerifier(keypair.GetPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	keys := root.NewTrustedPublicKeyMaterialFromMapping(map[string]*root.ExpiringKey{
		string(keypair.GetHint()): root.NewExpiringKey(v, now.Add(-time.Hour), now.Add(time.Hour)),
	})

	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherLeaf, otherRoot, _, err := GenerateChain(otherKey, "other tsa", now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		leaf    *x509.Certificate
		root    *x509.Certificate
		start   time.Time
		wantErr string
	}{
		{name: "our tsa", leaf: leaf, root: rootCert},
		{name: "other tsa", leaf: otherLeaf, root: otherRoot, wantErr: "timestamp"},
		{name: "our root, other leaf", leaf: otherLeaf, root: rootCert, wantErr: "timestamp"},
		{name: "tsa window starts later", leaf: leaf, root: rootCert, start: now.Add(time.Hour), wantErr: "timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil,
				[]root.TimestampingAuthority{&root.SigstoreTimestampingAuthority{
					Root: tt.root, Leaf: tt.leaf, URI: srv.URL + Path, ValidityPeriodStart: tt.start,
				}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			verifier, err := verify.NewVerifier(root.TrustedMaterialCollection{tr, keys}, verify.WithSignedTimestamps(1))
			if err != nil {
				t.Fatal(err)
			}
			res, err := verifier.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithKey()))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(res.VerifiedTimestamps) != 1 || res.VerifiedTimestamps[0].URI != srv.URL+Path {
					t.Errorf("verified timestamps = %+v", res.VerifiedTimestamps)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
