package trust

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/internal/tsa"
)

// TestVerifyKeySignedBundle signs a bundle with sigstore-go, timestamped by
// custody's TSA, and verifies it with sigstore-go against the trusted root
// this package exports, parsed back from JSON, plus the root's keys.
func TestVerifyKeySignedBundle(t *testing.T) {
	now := time.Now()
	tsaKey := mustECDSA(t, elliptic.P256())
	chain := tsaChain(t, now) // another authority's chain
	leaf, rootCert, _, err := tsa.GenerateChain(tsaKey, "custody tsa", now)
	if err != nil {
		t.Fatal(err)
	}
	ourChain := []*x509.Certificate{leaf, rootCert}
	a, err := tsa.NewAuthority(tsaKey, ourChain)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	url := srv.URL + tsa.Path

	keypair, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	artifact := []byte("custody artifact")
	pb, err := sign.Bundle(&sign.PlainData{Data: artifact}, keypair, sign.BundleOptions{
		TimestampAuthorities: []*sign.TimestampAuthority{
			sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: url, Timeout: 10 * time.Second}),
		},
	})
	if err != nil {
		t.Fatalf("sign.Bundle: %v", err)
	}
	b := &bundle.Bundle{Bundle: pb}
	pub := keypair.GetPublicKey().(*ecdsa.PublicKey)

	open := Window{Start: now.Add(-time.Hour)}
	tests := []struct {
		name    string
		tsa     TimestampAuthority
		key     Key
		wantErr string
	}{
		{name: "trusted", tsa: TimestampAuthority{URI: url, Chain: ourChain, Window: open}, key: Key{PublicKey: pub, Window: open}},
		{name: "explicit key ID", tsa: TimestampAuthority{URI: url, Chain: ourChain}, key: Key{ID: string(keypair.GetHint()), PublicKey: pub}},
		{name: "other tsa", tsa: TimestampAuthority{URI: url, Chain: chain, Window: open}, key: Key{PublicKey: pub, Window: open},
			wantErr: "timestamp"},
		{name: "tsa window closed", tsa: TimestampAuthority{URI: url, Chain: ourChain, Window: Window{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}},
			key: Key{PublicKey: pub, Window: open}, wantErr: "timestamp"},
		{name: "key rotated out", tsa: TimestampAuthority{URI: url, Chain: ourChain, Window: open},
			key: Key{PublicKey: pub, Window: Window{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}}, wantErr: "validity window"},
		{name: "key not yet valid", tsa: TimestampAuthority{URI: url, Chain: ourChain, Window: open},
			key: Key{PublicKey: pub, Window: Window{Start: now.Add(time.Hour)}}, wantErr: "validity window"},
		// sigstore-go reports an unknown key hint as a key outside its window.
		{name: "key under another ID", tsa: TimestampAuthority{URI: url, Chain: ourChain, Window: open},
			key: Key{ID: "someone-else", PublicKey: pub, Window: open}, wantErr: "validity window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Root{TSAs: []TimestampAuthority{tt.tsa}, Keys: []Key{tt.key}}
			// The TSA part goes through JSON, as a third-party verifier would see it.
			js, err := r.MarshalTrustedRootJSON()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := root.NewTrustedRootFromJSON(js)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := (&Root{Keys: r.Keys}).TrustedMaterial()
			if err != nil {
				t.Fatal(err)
			}
			both, err := r.TrustedMaterial()
			if err != nil {
				t.Fatal(err)
			}
			for name, tm := range map[string]root.TrustedMaterial{"json+keys": root.TrustedMaterialCollection{tr, keys}, "TrustedMaterial": both} {
				v, err := verify.NewVerifier(tm, verify.WithSignedTimestamps(1))
				if err != nil {
					t.Fatal(err)
				}
				_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithKey()))
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("%s: Verify: %v", name, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("%s: Verify error = %v, want one mentioning %q", name, err, tt.wantErr)
				}
			}
		})
	}
}
