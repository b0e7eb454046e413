package signer

import (
	"testing"
)

func FuzzDecryptPrivateKey(f *testing.F) {
	for _, name := range []string{"cosign-ecdsa-p256.key", "cosign-ed25519.key", "cosign-ecdsa-p256.pub"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\ne30=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"))
	f.Add([]byte{})
	pw := readTestdata(f, "cosign.password")
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := DecryptPrivateKey(in, pw)
		if err != nil {
			if s != nil {
				t.Error("signer returned with an error")
			}
			return
		}
		if err := checkPublicKey(s.Public()); err != nil {
			t.Errorf("decrypted an unsupported key: %v", err)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	for _, name := range []string{
		"cosign-ecdsa-p256.pub", "cosign-ed25519.pub", "ecdsa-p384.pub", "ecdsa-p521.pub",
		"rsa-2048.pub", "rsa-1024.pub", "ecdsa-p224.pub", "x25519.pub", "ed448.pub",
	} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pub, err := ParsePublicKey(in)
		if err != nil {
			return
		}
		out, err := MarshalPublicKey(pub)
		if err != nil {
			t.Fatalf("parsed key does not marshal: %v", err)
		}
		again, err := ParsePublicKey(out)
		if err != nil || !equalPublic(pub, again) {
			t.Fatalf("round trip failed: %v", err)
		}
		if KeyID(pub) == "" {
			t.Error("parsed key has no KeyID")
		}
	})
}
