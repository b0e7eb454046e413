package signer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCosignInterop runs the cosign binary, when it is on PATH, against
// keys and bundles custody writes, and loads a key cosign generates. The
// committed cosign keys in testdata/ cover loading when cosign is absent.
func TestCosignInterop(t *testing.T) {
	t.Parallel()
	cosign, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign not on PATH")
	}
	if testing.Short() {
		t.Skip("runs cosign; skipped in -short mode")
	}
	dir := t.TempDir()
	const pw = "interop"
	run := func(t *testing.T, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(cosign, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+pw, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("cosign %v: %v\n%s", args, err, out.Bytes())
		}
		return out.Bytes()
	}

	blob := []byte("hello from custody\n")
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	stmt := fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"blob","digest":{"sha256":%q}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://custody.dev/build/v1"}}}`, hex.EncodeToString(sum[:]))
	// An empty trust root: the bundles carry only a key hint.
	trustedRoot := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(trustedRoot, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, alg := range []Algorithm{ECDSAP256, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			prefix := filepath.Join(dir, string(alg))
			keyPath, pubPath, err := WriteKeyPair(prefix, alg, []byte(pw), false)
			if err != nil {
				t.Fatal(err)
			}
			// cosign decrypts our key and derives the same public key.
			if got, want := run(t, "public-key", "--key", keyPath), readFile(t, pubPath); !bytes.Equal(got, want) {
				t.Errorf("cosign public-key = %s, want %s", got, want)
			}
			if alg == ECDSAP256 {
				// cosign v2.6.1 sign-blob panics on every Ed25519 key (its
				// own included), so only ECDSA signs a blob here.
				run(t, "sign-blob", "--key", keyPath, "--tlog-upload=false", "--yes", "--output-signature", prefix+".sig", "blob")
				run(t, "verify-blob", "--key", pubPath, "--signature", prefix+".sig", "--insecure-ignore-tlog=true", "blob")
			}
			// cosign verifies the bundle SignStatement writes.
			s, err := DecryptPrivateKey(readFile(t, keyPath), []byte(pw))
			if err != nil {
				t.Fatal(err)
			}
			b, err := SignStatement(context.Background(), s, stmt)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(prefix+".bundle.json", b, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "verify-blob-attestation", "--new-bundle-format", "--trusted-root", trustedRoot,
				"--bundle", prefix+".bundle.json", "--key", pubPath, "--insecure-ignore-tlog=true",
				"--type", "slsaprovenance1", "blob")
		})
	}

	t.Run("cosign generate-key-pair", func(t *testing.T) {
		run(t, "generate-key-pair", "--output-key-prefix", "cosign")
		s, err := Load(filepath.Join(dir, "cosign.key"), func() ([]byte, error) { return []byte(pw), nil })
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ParsePublicKey(readFile(t, filepath.Join(dir, "cosign.pub")))
		if err != nil {
			t.Fatal(err)
		}
		if !equalPublic(pub, s.Public()) {
			t.Error("cosign's key does not match its .pub")
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
