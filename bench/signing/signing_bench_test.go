package signingbench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/signer"
)

// tokenLabel is the label of the benchmark's key in the SoftHSM2 test token.
// It is created on the first run and reused after (the token persists).
const tokenLabel = "bench-signing-p256"

// subjects and predicate make the statement every benchmark signs: one
// artifact and a small SLSA v1 provenance, as custody build records.
var (
	subjects = []attest.Subject{{Name: "dist/app", Digest: map[string]string{
		"sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}}
	predicate = attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{
			BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"go", "build", "-o", "dist/app", "."},
				Source: attest.CustodySource{URI: "git+https://github.com/org/repo", Ref: "refs/tags/v1.2.0"}},
		},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/local@v1"}},
	}
)

// opened caches the signers (a benchmark function runs several times while
// b.N is calibrated; opening a key file costs a scrypt derivation); TestMain
// closes them.
var (
	openedMu sync.Mutex
	opened   = map[string]crypto.Signer{}
)

func cached(name string, open func() (crypto.Signer, error)) (crypto.Signer, error) {
	openedMu.Lock()
	defer openedMu.Unlock()
	if s, ok := opened[name]; ok {
		return s, nil
	}
	s, err := open()
	if err != nil {
		return nil, err
	}
	opened[name] = s
	return s, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	for name, s := range opened {
		if err := signer.Close(s); err != nil {
			fmt.Fprintf(os.Stderr, "closing the %s key: %v\n", name, err)
			code = 1
		}
	}
	os.Exit(code)
}

// fileKey is an ECDSA P-256 key written in the Sigstore encrypted format
// and opened with signer.Load, as `custody build --key release.key` opens it.
func fileKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	s, err := cached("file", func() (crypto.Signer, error) {
		dir, err := os.MkdirTemp("", "custody-bench-signing-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		pw := []byte("bench")
		keyPath, _, err := signer.WriteKeyPair(filepath.Join(dir, "release"), signer.ECDSAP256, pw, false)
		if err != nil {
			return nil, err
		}
		return signer.Load(keyPath, func() ([]byte, error) { return pw, nil })
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// tokenKey opens (creating it on first use) an ECDSA P-256 key in the
// SoftHSM2 token scripts/softhsm sets up, by the pkcs11: URI a user would
// pass to --key, with signer.Load as custody does. It skips when that token
// is not configured.
func tokenKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	if os.Getenv("SOFTHSM2_CONF") == "" {
		tb.Skip("SOFTHSM2_CONF not set: run eval \"$(scripts/softhsm)\" first")
	}
	module := os.Getenv("CUSTODY_TEST_PKCS11_MODULE")
	if module == "" {
		module = signer.DefaultPKCS11Module
	}
	pin := os.Getenv("CUSTODY_TEST_PKCS11_PIN")
	if pin == "" {
		pin = "1234"
	}
	uri := "pkcs11:token=custody;object=" + tokenLabel + "?module-path=" + module + "&pin-value=" + pin
	s, err := cached("pkcs11", func() (crypto.Signer, error) {
		s, err := signer.Load(uri, nil)
		if errors.Is(err, signer.ErrKeyNotFound) {
			return signer.GeneratePKCS11(uri, signer.ECDSAP256)
		}
		return s, err
	})
	if err != nil {
		tb.Skipf("no PKCS#11 key: %v", err)
	}
	return s
}

var keys = []struct {
	name string
	open func(testing.TB) crypto.Signer
}{
	{"file", fileKey},
	{"pkcs11", tokenKey},
}

// signBundle does what custody attest and custody build do for each
// bundle: build the in-toto statement, encode it, sign it as DSSE and write
// the Sigstore bundle v0.3 JSON.
func signBundle(ctx context.Context, s crypto.Signer) ([]byte, error) {
	st, err := attest.NewStatement(subjects, attest.PredicateSLSAv1, predicate)
	if err != nil {
		return nil, err
	}
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	return signer.SignStatement(ctx, s, payload)
}

// reportRate adds signatures per second of wall time to the results.
func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "sigs/s")
	}
}

// BenchmarkSignBundle: one op is one statement signed into a bundle.
func BenchmarkSignBundle(b *testing.B) {
	ctx := context.Background()
	for _, k := range keys {
		b.Run("key="+k.name, func(b *testing.B) {
			s := k.open(b)
			if _, err := signBundle(ctx, s); err != nil { // warm: a session in the pool
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := signBundle(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}

// BenchmarkSignRaw: one op is one ECDSA P-256 signature over a SHA-256
// digest through crypto.Signer, nothing else.
func BenchmarkSignRaw(b *testing.B) {
	digest := sha256.Sum256([]byte("custody"))
	for _, k := range keys {
		b.Run("key="+k.name, func(b *testing.B) {
			s := k.open(b)
			if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}

// BenchmarkSignRawParallel: raw signatures from GOMAXPROCS goroutines
// sharing one signer, as custody build signs its bundles in parallel (a
// PKCS#11 signer hands each concurrent Sign its own session).
func BenchmarkSignRawParallel(b *testing.B) {
	digest := sha256.Sum256([]byte("custody"))
	for _, k := range keys {
		b.Run("key="+k.name, func(b *testing.B) {
			s := k.open(b)
			var once sync.Once
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
						once.Do(func() { b.Error(err) })
						return
					}
				}
			})
			reportRate(b)
		})
	}
}

// TestSignaturesVerify checks that what the benchmarks time is real work:
// with either key, the raw signature verifies under the key's public half
// and the bundle carries a DSSE envelope of the statement.
func TestSignaturesVerify(t *testing.T) {
	digest := sha256.Sum256([]byte("custody"))
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t)
			pub, ok := s.Public().(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Fatalf("key is %T, want ECDSA P-256", s.Public())
			}
			sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.VerifyASN1(pub, digest[:], sig) {
				t.Fatal("signature does not verify")
			}
			b, err := signBundle(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			var bb bundle.Bundle
			if err := bb.UnmarshalJSON(b); err != nil {
				t.Fatal(err)
			}
			env := bb.GetDsseEnvelope()
			if env == nil || len(env.Signatures) != 1 || env.PayloadType != attest.PayloadType {
				t.Fatalf("bundle has no single-signature in-toto DSSE envelope: %s", b)
			}
		})
	}
}
