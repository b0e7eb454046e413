package policy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/custody-dev/custody/trust"
)

func adminRoot(t *testing.T, n, k int) (*trust.Document, []*ecdsa.PrivateKey) {
	t.Helper()
	var keys []trust.Key
	var privs []*ecdsa.PrivateKey
	for range n {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, priv)
		keys = append(keys, trust.Key{PublicKey: priv.Public()})
	}
	d, err := trust.NewDocument(keys, k, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return d, privs
}

func TestSignedThreshold(t *testing.T) {
	ctx := context.Background()
	root, admins := adminRoot(t, 3, 2)
	outsider, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	yaml := []byte(minimal + "version: 2\n")
	s, err := NewSigned(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if s.Policy().Version != 2 || s.Policy().Digest() != s.Digest() {
		t.Fatalf("policy version %d digest %s; want 2 and the digest of the signed bytes %s", s.Policy().Version, s.Policy().Digest(), s.Digest())
	}
	tests := []struct {
		name    string
		signers []*ecdsa.PrivateKey
		ok      bool
	}{
		{"none", nil, false},
		{"one admin", admins[:1], false},
		{"one admin twice", []*ecdsa.PrivateKey{admins[0], admins[0]}, false},
		{"one admin and an outsider", []*ecdsa.PrivateKey{admins[0], outsider}, false},
		{"two admins", admins[:2], true},
		{"three admins", admins, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := NewSigned(yaml)
			for _, k := range tt.signers {
				if err := s.Sign(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			// Round trip through the envelope, as the server receives it.
			b, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSigned(b)
			if err != nil {
				t.Fatalf("ParseSigned: %v", err)
			}
			_, err = got.Verify(root, time.Now())
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v; want ok %v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrThreshold) || !errors.Is(err, trust.ErrThreshold)) {
				t.Errorf("error %v does not wrap ErrThreshold", err)
			}
		})
	}
}

func TestSignedTampered(t *testing.T) {
	ctx := context.Background()
	root, admins := adminRoot(t, 3, 2)
	s, _ := NewSigned([]byte(minimal + "version: 1\n"))
	for _, k := range admins[:2] {
		s.Sign(ctx, k)
	}
	// Same signatures over other bytes (an older version, say) never count.
	other, _ := NewSigned([]byte(minimal + "version: 3\n"))
	other.Signatures = s.Signatures
	if _, err := other.Verify(root, time.Now()); !errors.Is(err, ErrThreshold) {
		t.Errorf("moved signatures: Verify = %v; want ErrThreshold", err)
	}
	// A revoked admin does not count.
	if err := root.RevokeKey(s.Signatures[0].KeyID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(root, time.Now()); !errors.Is(err, ErrThreshold) {
		t.Errorf("revoked admin: Verify = %v; want ErrThreshold", err)
	}
}

func TestParseSignedMalformed(t *testing.T) {
	good, _ := NewSigned([]byte(minimal))
	b, _ := good.Marshal()
	for name, in := range map[string][]byte{
		"empty":         nil,
		"not json":      []byte("apiVersion: x"),
		"other type":    bytes.Replace(b, []byte(SignedPayloadType), []byte("application/vnd.in-toto+json"), 1),
		"unknown field": bytes.Replace(b, []byte(`"payload"`), []byte(`"extra":1,"payload"`), 1),
		"trailing":      append(append([]byte{}, b...), []byte("{}")...),
		"bad policy":    []byte(`{"payloadType":"` + SignedPayloadType + `","payload":"eDogMQ==","signatures":[]}`),
		"empty sig":     []byte(`{"payloadType":"` + SignedPayloadType + `","payload":"eDogMQ==","signatures":[{"keyid":"a","sig":""}]}`),
		// Which payload did the admins sign? encoding/json took the last.
		"duplicate payload": bytes.Replace(b, []byte(`"payload":`), []byte(`"payload":"eDogMQ==","payload":`), 1),
		"invalid utf-8":     bytes.Replace(b, []byte(`"payload":`), []byte("\"payl\xffad\":1,\"payload\":"), 1),
	} {
		if _, err := ParseSigned(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseSigned = %v; want ErrMalformed", name, err)
		}
	}
}

// FuzzParseSigned: ParseSigned never panics, and what it accepts marshals
// to an envelope it accepts again with the same payload and signatures.
func FuzzParseSigned(f *testing.F) {
	s, _ := NewSigned([]byte(minimal))
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.Sign(context.Background(), priv)
	b, _ := s.Marshal()
	f.Add(b)
	f.Add([]byte(`{"payloadType":"` + SignedPayloadType + `","payload":"","signatures":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigned(b)
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseSigned(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(s.Payload, s2.Payload) || len(s.Signatures) != len(s2.Signatures) || s.Digest() != s2.Digest() {
			t.Fatal("round trip changed the envelope")
		}
	})
}
