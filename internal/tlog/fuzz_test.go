package tlog

import (
	"crypto/ecdsa"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

func FuzzParseCreateEntryRequest(f *testing.F) {
	good, err := protojson.Marshal(hashedRekord(f, "seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"dsseRequestV002":{"envelope":{"payload":"aGk=","payloadType":"t","signatures":[{"sig":"aGk="}]},"verifiers":[{"publicKey":{"rawBytes":"aGk="}}]}}`))
	f.Add([]byte(`{"hashedRekordRequestV002":{"digest":"aGk=","signature":{"content":"aGk=","verifier":{"x509Certificate":{"rawBytes":"aGk="},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseCreateEntryRequest(b, 0)
		if err != nil {
			return
		}
		body, kv, err := CanonicalEntry(req)
		if err != nil {
			return
		}
		if len(body) == 0 || kv.Version != APIVersion {
			t.Fatalf("accepted entry with body %q kind %v", body, kv)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	key := newECDSAKey(f).(*ecdsa.PrivateKey)
	s, err := newNoteSigner(testOrigin, key)
	if err != nil {
		f.Fatal(err)
	}
	v, _ := NewNoteVerifier(testOrigin, key.Public())
	var signed []byte
	s.after = func(msg, sig []byte) error {
		signed, err = signedNote(v, msg, sig)
		return err
	}
	if _, err := s.Sign([]byte(testOrigin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")); err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte(testOrigin + "\n5\nAAAA\n\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ParseCheckpoint(b, v)
		if err != nil {
			return
		}
		if cp.Origin != testOrigin || len(cp.Hash) != 32 {
			t.Fatalf("accepted %+v", cp)
		}
	})
}

func FuzzParseCheckpointBody(f *testing.F) {
	f.Add("origin\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("origin\n05\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n")
	f.Fuzz(func(t *testing.T, s string) {
		cp, err := parseCheckpointBody(s)
		if err != nil {
			return
		}
		if cp.Origin == "" || len(cp.Hash) != 32 {
			t.Fatalf("accepted %+v", cp)
		}
		// The body re-encodes as the first three lines it was read from
		// (extension lines follow).
		b := fmt.Sprintf("%s\n%d\n%s\n", cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash))
		if !strings.HasPrefix(s, b) {
			t.Fatalf("body %q re-encodes as %q", s, b)
		}
	})
}

func FuzzParseProof(f *testing.F) {
	f.Add(MarshalProof([][]byte{make([]byte, 32), make([]byte, 32)}))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProof(b)
		if err != nil {
			return
		}
		if got := MarshalProof(p); string(got) != string(b) {
			t.Fatalf("round trip: %q != %q", got, b)
		}
	})
}
