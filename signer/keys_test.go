package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// equalPublic reports whether two public keys are the same key.
func equalPublic(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func TestParseAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Algorithm
		wantErr bool
	}{
		{"ecdsa-p256", ECDSAP256, false},
		{"ECDSA-P256", ECDSAP256, false},
		{" ed25519 ", Ed25519, false},
		{"ed25519ph", "", true},
		{"rsa", "", true},
		{"", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAlgorithm(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	for _, alg := range []Algorithm{ECDSAP256, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			priv, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			pw := []byte("correct horse battery staple")
			enc, err := EncryptPrivateKey(priv, pw)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(enc)
			if block == nil || block.Type != PrivateKeyPEMType {
				t.Fatalf("EncryptPrivateKey wrote %q, want a %q PEM block", enc, PrivateKeyPEMType)
			}
			got, err := DecryptPrivateKey(enc, pw)
			if err != nil {
				t.Fatal(err)
			}
			if !equalPublic(got.Public(), priv.Public()) {
				t.Error("decrypted key differs from the encrypted one")
			}
			if _, err := DecryptPrivateKey(enc, []byte("correct horse battery stapler")); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("wrong password: got %v, want ErrWrongPassword", err)
			}
		})
	}
}

// TestDecryptCosignKeys reads keys cosign v2.6.1 wrote (see testdata/README.md).
func TestDecryptCosignKeys(t *testing.T) {
	t.Parallel()
	pw := readTestdata(t, "cosign.password")
	for _, tc := range []struct {
		name   string
		file   string
		legacy bool // rewrap as "ENCRYPTED COSIGN PRIVATE KEY"
		keyID  string
	}{
		{"ecdsa-p256", "cosign-ecdsa-p256", false, "d99e88e110bc847e46b73eaee54a6df71f7c88cb23b638f13fda3ff4c58c9753"},
		{"ed25519", "cosign-ed25519", false, "ec953fe005f7187584c5d89ba5b2bb2eca086e65997b4b384c00cfd9998876dd"},
		{"legacy PEM type", "cosign-ecdsa-p256", true, "d99e88e110bc847e46b73eaee54a6df71f7c88cb23b638f13fda3ff4c58c9753"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyPEM := readTestdata(t, tc.file+".key")
			if tc.legacy {
				block, _ := pem.Decode(keyPEM)
				block.Type = LegacyPrivateKeyPEMType
				keyPEM = pem.EncodeToMemory(block)
			}
			priv, err := DecryptPrivateKey(keyPEM, pw)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ParsePublicKey(readTestdata(t, tc.file+".pub"))
			if err != nil {
				t.Fatal(err)
			}
			if !equalPublic(priv.Public(), pub) {
				t.Error("private key does not match the .pub cosign wrote")
			}
			if got := KeyID(pub); got != tc.keyID {
				t.Errorf("KeyID = %s, want %s", got, tc.keyID)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		_, err := DecryptPrivateKey(readTestdata(t, "cosign-ecdsa-p256.key"), []byte("cospw\n"))
		if !errors.Is(err, ErrWrongPassword) {
			t.Errorf("got %v, want ErrWrongPassword", err)
		}
	})
}

// encryptedJSON returns the decoded JSON body of an encrypted key file as a
// generic map, for tests that tamper with it.
func encryptedJSON(t *testing.T, keyPEM []byte) map[string]any {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	var m map[string]any
	if err := json.Unmarshal(block.Bytes, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wrap(t *testing.T, typ string, v any) []byte {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
}

func TestDecryptMalformed(t *testing.T) {
	good := readTestdata(t, "cosign-ecdsa-p256.key")
	pw := readTestdata(t, "cosign.password")
	tamper := func(f func(m map[string]any)) []byte {
		m := encryptedJSON(t, good)
		f(m)
		return wrap(t, PrivateKeyPEMType, m)
	}
	kdfParams := func(m map[string]any) map[string]any {
		return m["kdf"].(map[string]any)["params"].(map[string]any)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "no PEM block"},
		{"garbage", []byte("not a key at all"), "no PEM block"},
		{"truncated PEM", good[:len(good)/2], "no PEM block"},
		{"trailing data", append(append([]byte{}, good...), "junk"...), "after the PEM block"},
		{"two blocks", append(append([]byte{}, good...), good...), "after the PEM block"},
		{"public key", readTestdata(t, "cosign-ecdsa-p256.pub"), `"PUBLIC KEY"`},
		{"unencrypted PKCS#8", wrap(t, "PRIVATE KEY", pkcs8), "not encrypted"},
		{"not JSON", wrap(t, PrivateKeyPEMType, []byte("{")), "malformed encrypted key JSON"},
		{"wrong kdf", tamper(func(m map[string]any) { m["kdf"].(map[string]any)["name"] = "pbkdf2" }), "not scrypt"},
		// Rejected before scrypt runs: a huge N would take minutes and gigabytes.
		{"huge scrypt N", tamper(func(m map[string]any) { kdfParams(m)["N"] = 1 << 30 }), "scrypt parameters"},
		{"scrypt r", tamper(func(m map[string]any) { kdfParams(m)["r"] = 1 }), "scrypt parameters"},
		{"no salt", tamper(func(m map[string]any) { delete(m["kdf"].(map[string]any), "salt") }), "salt is empty"},
		{"wrong cipher", tamper(func(m map[string]any) { m["cipher"].(map[string]any)["name"] = "aes" }), "not nacl/secretbox"},
		{"short nonce", tamper(func(m map[string]any) { m["cipher"].(map[string]any)["nonce"] = "AAAA" }), "nonce is 3 bytes"},
		{"short ciphertext", tamper(func(m map[string]any) { m["ciphertext"] = "AAAA" }), "too short"},
		{"ciphertext not base64", tamper(func(m map[string]any) { m["ciphertext"] = "!!" }), "malformed encrypted key JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecryptPrivateKey(tc.in, pw)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrWrongPassword) {
				t.Error("malformed input reported as a wrong password")
			}
		})
	}
}

// TestDecryptUnsupportedContents encrypts plaintexts that are not keys
// custody signs with; each costs one scrypt each way.
func TestDecryptUnsupportedContents(t *testing.T) {
	t.Parallel()
	pw := []byte("pw")
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		key         any
		plain       []byte
		unsupported bool
	}{
		{"not PKCS#8", nil, []byte("hello"), false},
		{"X25519 cannot sign", x25519, nil, true},
		{"ECDSA P-224", p224, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := tc.plain
			if tc.key != nil {
				if plain, err = x509.MarshalPKCS8PrivateKey(tc.key); err != nil {
					t.Fatal(err)
				}
			}
			// The legacy parameters cosign still reads halve the cost.
			enc, err := encrypted.EncryptWithCustomKDFParameters(plain, pw, encrypted.Legacy)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecryptPrivateKey(wrap(t, PrivateKeyPEMType, enc), pw)
			if err == nil || errors.Is(err, ErrWrongPassword) || errors.Is(err, ErrUnsupportedKey) != tc.unsupported {
				t.Errorf("got %v, want an error (unsupported key: %v)", err, tc.unsupported)
			}
		})
	}
	t.Run("EncryptPrivateKey refuses P-224", func(t *testing.T) {
		if _, err := EncryptPrivateKey(p224, pw); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("got %v, want ErrUnsupportedKey", err)
		}
	})
}

func TestParsePublicKey(t *testing.T) {
	for _, tc := range []struct {
		file    string
		wantErr string // "" for success
	}{
		{"cosign-ecdsa-p256.pub", ""},
		{"cosign-ed25519.pub", ""},
		{"ecdsa-p384.pub", ""},
		{"ecdsa-p521.pub", ""},
		{"rsa-2048.pub", ""},
		{"ecdsa-p224.pub", "P-224"},
		{"ecdsa-secp256k1.pub", "parse"}, // Go's x509 does not know the curve
		{"rsa-1024.pub", "1024 bits"},
		{"x25519.pub", "ecdh.PublicKey"},
		{"ed448.pub", "parse"},
		{"cosign-ecdsa-p256.key", "want \"PUBLIC KEY\""},
		{"README.md", "no PEM block"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := readTestdata(t, tc.file)
			pub, err := ParsePublicKey(in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := MarshalPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParsePublicKey(out)
			if err != nil || !equalPublic(pub, again) {
				t.Errorf("MarshalPublicKey/ParsePublicKey round trip failed: %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(in)) {
				t.Errorf("MarshalPublicKey = %s, want %s", out, in)
			}
		})
	}
}

func TestKeyIDAndHint(t *testing.T) {
	t.Parallel()
	pub, err := ParsePublicKey(readTestdata(t, "cosign-ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// Values from openssl; see testdata/README.md.
	const wantID = "ec953fe005f7187584c5d89ba5b2bb2eca086e65997b4b384c00cfd9998876dd"
	const wantHint = "7JU/4AX3GHWExdibpbK7LsoIbmWZe0s4TADP2ZmIdt0="
	if got := KeyID(pub); got != wantID {
		t.Errorf("KeyID = %s, want %s", got, wantID)
	}
	kp, err := NewKeypair(ed25519PrivFromTestdata(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(kp.GetHint()); got != wantHint {
		t.Errorf("hint = %s, want %s", got, wantHint)
	}
	raw, _ := base64.StdEncoding.DecodeString(wantHint)
	if KeyID(pub) != hex.EncodeToString(raw) {
		t.Error("KeyID and hint are not the same digest")
	}
	if KeyID(struct{}{}) != "" {
		t.Error("KeyID of an unknown key type is not empty")
	}
}

// ed25519PrivFromTestdata decrypts the cosign Ed25519 test key (one scrypt).
func ed25519PrivFromTestdata(t *testing.T) crypto.Signer {
	t.Helper()
	s, err := DecryptPrivateKey(readTestdata(t, "cosign-ed25519.key"), readTestdata(t, "cosign.password"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
