package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
)

var testNow = time.Date(2026, 6, 4, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow.Add(123 * time.Millisecond) }

// newTestAuthority returns an authority on a fresh P-256 key and chain.
func newTestAuthority(t testing.TB, opts ...Option) (*Authority, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, root, _, err := GenerateChain(key, "custody test tsa", testNow)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthority(key, []*x509.Certificate{leaf, root}, append([]Option{WithClock(fixedClock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a, root
}

// rawRequest builds a TimeStampReq without the checks of a client library.
func rawRequest(t testing.TB, r timeStampReq) []byte {
	t.Helper()
	b, err := asn1.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func imprint(oid asn1.ObjectIdentifier, n int) messageImprint {
	return messageImprint{
		HashAlgorithm: pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue},
		HashedMessage: bytes.Repeat([]byte{7}, n),
	}
}

func TestTimestampGranted(t *testing.T) {
	d256 := sha256.Sum256([]byte("hello"))
	d384 := sha512.Sum384([]byte("hello"))
	d512 := sha512.Sum512([]byte("hello"))
	tests := []struct {
		name    string
		hash    crypto.Hash
		digest  []byte
		nonce   *big.Int
		certReq bool
		policy  asn1.ObjectIdentifier
	}{
		{name: "sha256", hash: crypto.SHA256, digest: d256[:]},
		{name: "sha384 nonce", hash: crypto.SHA384, digest: d384[:], nonce: big.NewInt(42)},
		{name: "sha512 certReq", hash: crypto.SHA512, digest: d512[:], certReq: true},
		{name: "big nonce and policy", hash: crypto.SHA256, digest: d256[:], nonce: new(big.Int).Lsh(big.NewInt(1), 100), policy: DefaultPolicy()},
	}
	a, _ := newTestAuthority(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &timestamp.Request{HashAlgorithm: tt.hash, HashedMessage: tt.digest, Nonce: tt.nonce, Certificates: tt.certReq, TSAPolicyOID: tt.policy}
			der, err := req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			resp, err := a.Timestamp(context.Background(), der)
			if err != nil {
				t.Fatalf("Timestamp: %v", err)
			}
			ts, err := timestamp.ParseResponse(resp)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if !ts.Time.Equal(testNow) {
				t.Errorf("genTime = %v, want %v", ts.Time, testNow)
			}
			if ts.HashAlgorithm != tt.hash || !bytes.Equal(ts.HashedMessage, tt.digest) {
				t.Errorf("imprint = %v %x, want %v %x", ts.HashAlgorithm, ts.HashedMessage, tt.hash, tt.digest)
			}
			if (tt.nonce == nil) != (ts.Nonce == nil) || (tt.nonce != nil && tt.nonce.Cmp(ts.Nonce) != 0) {
				t.Errorf("nonce = %v, want %v", ts.Nonce, tt.nonce)
			}
			if !ts.Policy.Equal(DefaultPolicy()) {
				t.Errorf("policy = %v, want %v", ts.Policy, DefaultPolicy())
			}
			if tt.certReq != (len(ts.Certificates) > 0) {
				t.Errorf("certReq %v but %d certificates in token", tt.certReq, len(ts.Certificates))
			}
			if tt.certReq && !ts.Certificates[0].Equal(a.Chain()[0]) {
				t.Errorf("token certificate is not the leaf")
			}
			if ts.Accuracy != time.Second {
				t.Errorf("accuracy = %v, want 1s", ts.Accuracy)
			}
		})
	}
}

func TestTimestampRejects(t *testing.T) {
	good := imprint(oidSHA256, 32)
	tests := []struct {
		name string
		der  func(t *testing.T) []byte
	}{
		{"empty", func(*testing.T) []byte { return nil }},
		{"garbage", func(*testing.T) []byte { return []byte("not DER at all") }},
		{"version 2", func(t *testing.T) []byte { return rawRequest(t, timeStampReq{Version: 2, MessageImprint: good}) }},
		{"version 0", func(t *testing.T) []byte { return rawRequest(t, timeStampReq{Version: 0, MessageImprint: good}) }},
		{"sha1", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: imprint(asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, 20)})
		}},
		{"sha256 short digest", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: imprint(oidSHA256, 31)})
		}},
		{"sha384 with sha256 length", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: imprint(oidSHA384, 32)})
		}},
		{"sha512 empty digest", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: imprint(oidSHA512, 0)})
		}},
		{"bad parameters", func(t *testing.T) []byte {
			m := good
			m.HashAlgorithm.Parameters = asn1.RawValue{FullBytes: []byte{0x02, 0x01, 0x05}}
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: m})
		}},
		{"negative nonce", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: good, Nonce: big.NewInt(-3)})
		}},
		{"unknown policy", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: good, ReqPolicy: asn1.ObjectIdentifier{1, 2, 3, 4}})
		}},
		{"critical extension", func(t *testing.T) []byte {
			return rawRequest(t, timeStampReq{Version: 1, MessageImprint: good,
				Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Critical: true, Value: []byte{5, 0}}}})
		}},
		{"trailing data", func(t *testing.T) []byte {
			return append(rawRequest(t, timeStampReq{Version: 1, MessageImprint: good}), 0)
		}},
		{"too large", func(*testing.T) []byte { return make([]byte, MaxRequestSize+1) }},
	}
	a, _ := newTestAuthority(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Timestamp(context.Background(), tt.der(t))
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("Timestamp error = %v, want ErrMalformedRequest", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line: %q", err)
			}
		})
	}
	t.Run("non-critical extension accepted", func(t *testing.T) {
		der := rawRequest(t, timeStampReq{Version: 1, MessageImprint: good,
			Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Value: []byte{5, 0}}}})
		if _, err := a.Timestamp(context.Background(), der); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTimestampSerialsUnique(t *testing.T) {
	a, _ := newTestAuthority(t)
	d := sha256.Sum256(nil)
	der, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:]}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 50 {
		resp, err := a.Timestamp(context.Background(), der)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := timestamp.ParseResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		if ts.SerialNumber.BitLen() < 100 {
			t.Errorf("serial %v is suspiciously short", ts.SerialNumber)
		}
		if seen[ts.SerialNumber.String()] {
			t.Fatalf("serial %v issued twice", ts.SerialNumber)
		}
		seen[ts.SerialNumber.String()] = true
	}
}

func TestTimestampOutsideCertificateValidity(t *testing.T) {
	a, _ := newTestAuthority(t, WithClock(func() time.Time { return testNow.Add(-time.Hour) }))
	d := sha256.Sum256(nil)
	der, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:]}).Marshal()
	_, err := a.Timestamp(context.Background(), der)
	if err == nil || errors.Is(err, ErrMalformedRequest) {
		t.Fatalf("Timestamp error = %v, want an authority failure", err)
	}
}

func TestTimestampRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leaf, root, _, err := GenerateChain(key, "rsa tsa", testNow)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthority(key, []*x509.Certificate{leaf, root}, WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	der, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:], Certificates: true}).Marshal()
	resp, err := a.Timestamp(context.Background(), der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timestamp.ParseResponse(resp); err != nil {
		t.Fatal(err)
	}
}

func TestNewAuthorityRejects(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	leaf, root, rootKey, err := GenerateChain(key, "tsa", testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, otherRoot, _, _ := GenerateChain(key, "tsa", testNow)

	// A leaf whose EKU is timeStamping but not critical, as x509 writes it by default.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "non-critical"},
		NotBefore: testNow, NotAfter: testNow.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	}
	nc, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	nonCritical, _ := x509.ParseCertificate(nc)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	cs, _ := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	codeSigning, _ := x509.ParseCertificate(cs)

	tests := []struct {
		name   string
		signer crypto.Signer
		chain  []*x509.Certificate
		opts   []Option
	}{
		{"nil signer", nil, []*x509.Certificate{leaf, root}, nil},
		{"empty chain", key, nil, nil},
		{"other key", other, []*x509.Certificate{leaf, root}, nil},
		{"p521", p521, []*x509.Certificate{leaf, root}, nil},
		{"root as leaf", key, []*x509.Certificate{root}, nil},
		{"non-critical eku", key, []*x509.Certificate{nonCritical, root}, nil},
		{"code signing eku", key, []*x509.Certificate{codeSigning, root}, nil},
		{"wrong root", key, []*x509.Certificate{leaf, otherRoot}, nil},
		{"nil clock", key, []*x509.Certificate{leaf, root}, []Option{WithClock(nil)}},
		{"short policy", key, []*x509.Certificate{leaf, root}, []Option{WithPolicy(asn1.ObjectIdentifier{1})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAuthority(tt.signer, tt.chain, tt.opts...); err == nil {
				t.Fatal("NewAuthority succeeded, want error")
			}
		})
	}
}

func TestGenerateChain(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	leaf, root, rootKey, err := GenerateChain(key, "custody", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || leaf.IsCA {
		t.Errorf("root.IsCA=%v leaf.IsCA=%v", root.IsCA, leaf.IsCA)
	}
	if !rootKey.Public().(*ecdsa.PublicKey).Equal(root.PublicKey) {
		t.Error("root key does not match root certificate")
	}
	if leaf.NotAfter.Sub(leaf.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("leaf valid only %v", leaf.NotAfter.Sub(leaf.NotBefore))
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow.AddDate(5, 0, 0),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	if err := checkTimeStampingEKU(leaf); err != nil {
		t.Error(err)
	}
}

func TestHandler(t *testing.T) {
	a, _ := newTestAuthority(t)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	d := sha256.Sum256(nil)
	good, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: d[:]}).Marshal()
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		wantCode    int
		wantType    string
	}{
		{"granted", http.MethodPost, QueryMediaType, good, http.StatusOK, ReplyMediaType},
		{"malformed", http.MethodPost, QueryMediaType, []byte{0x30, 0x00}, http.StatusBadRequest, "text/plain; charset=utf-8"},
		{"get", http.MethodGet, "", nil, http.StatusMethodNotAllowed, "text/plain; charset=utf-8"},
		{"json", http.MethodPost, "application/json", good, http.StatusUnsupportedMediaType, "text/plain; charset=utf-8"},
		{"too large", http.MethodPost, QueryMediaType, make([]byte, MaxRequestSize+10), http.StatusRequestEntityTooLarge, "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+Path, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body.String(), tt.wantCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("content type = %q, want %q", got, tt.wantType)
			}
			if tt.wantCode != http.StatusOK && strings.Count(body.String(), "\n") != 1 {
				t.Errorf("error body is not one line: %q", body.String())
			}
			if tt.wantCode == http.StatusOK {
				if _, err := timestamp.ParseResponse(body.Bytes()); err != nil {
					t.Errorf("reply does not parse: %v", err)
				}
			}
		})
	}
}

func FuzzTimestamp(f *testing.F) {
	d := sha256.Sum256(nil)
	for _, r := range []*timestamp.Request{
		{HashAlgorithm: crypto.SHA256, HashedMessage: d[:]},
		{HashAlgorithm: crypto.SHA256, HashedMessage: d[:], Nonce: big.NewInt(1), Certificates: true, TSAPolicyOID: DefaultPolicy()},
	} {
		der, err := r.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	a, _ := newTestAuthority(f)
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := a.Timestamp(context.Background(), der)
		if err != nil {
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		ts, err := timestamp.ParseResponse(resp)
		if err != nil {
			t.Fatalf("granted response does not parse: %v", err)
		}
		if len(ts.HashedMessage) != ts.HashAlgorithm.Size() {
			t.Fatalf("granted a %v imprint of %d bytes", ts.HashAlgorithm, len(ts.HashedMessage))
		}
	})
}
