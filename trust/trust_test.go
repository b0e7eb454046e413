package trust

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/tsa"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// selfSignedCA makes a one-certificate CA chain.
func selfSignedCA(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	k := mustECDSA(t, elliptic.P256())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"custody.dev"}},
		NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tsaChain(t testing.TB, now time.Time) []*x509.Certificate {
	t.Helper()
	leaf, rootCert, _, err := tsa.GenerateChain(mustECDSA(t, elliptic.P256()), "custody tsa", now)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{leaf, rootCert}
}

func TestMarshalTrustedRootJSON(t *testing.T) {
	logKey := mustECDSA(t, elliptic.P256())
	ctPub, _, _ := ed25519.GenerateKey(rand.Reader)
	chain := tsaChain(t, t0)
	ca := selfSignedCA(t, "custody ca")
	keyA := mustECDSA(t, elliptic.P384())
	r := &Root{
		Tlogs: []TransparencyLog{
			{BaseURL: "https://log.custody.test", PublicKey: logKey.Public(), Window: Window{Start: t0}},
			{BaseURL: "https://old.custody.test", PublicKey: mustECDSA(t, elliptic.P256()).Public(), LogID: []byte("explicit-id"),
				Window: Window{Start: t0.AddDate(-1, 0, 0), End: t0}},
		},
		CTLogs:                 []TransparencyLog{{BaseURL: "https://ct.custody.test", PublicKey: ctPub, Window: Window{Start: t0}}},
		TSAs:                   []TimestampAuthority{{URI: "https://tsa.custody.test/api/v1/timestamp", Chain: chain, Window: Window{Start: t0, End: t0.AddDate(2, 0, 0)}}},
		CertificateAuthorities: []CertificateAuthority{{URI: "https://ca.custody.test", Chain: []*x509.Certificate{ca}, Window: Window{Start: t0}}},
		Keys:                   []Key{{PublicKey: keyA.Public(), Window: Window{Start: t0}}},
	}
	b, err := r.MarshalTrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.MarshalTrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Error("output is not deterministic")
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["mediaType"] != TrustedRootMediaType {
		t.Errorf("mediaType = %v", doc["mediaType"])
	}
	if strings.Contains(string(b), "keys") {
		t.Error("signing keys leaked into trusted_root.json")
	}

	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		t.Fatalf("sigstore-go rejects the export: %v\n%s", err, b)
	}
	der, _ := x509.MarshalPKIXPublicKey(logKey.Public())
	sum := sha256.Sum256(der)

	t.Run("tlogs", func(t *testing.T) {
		logs := tr.RekorLogs()
		if len(logs) != 2 {
			t.Fatalf("%d tlogs, want 2", len(logs))
		}
		l := logs[hex.EncodeToString(sum[:])]
		if l == nil {
			t.Fatal("tlog not found by sha256(PKIX) log ID")
		}
		if !l.ValidityPeriodStart.Equal(t0) || !l.ValidityPeriodEnd.IsZero() || l.BaseURL != "https://log.custody.test" {
			t.Errorf("tlog = %+v", l)
		}
		old := logs[hex.EncodeToString([]byte("explicit-id"))]
		// Window's end is exclusive, Sigstore's closed: the last instant.
		if old == nil || !old.ValidityPeriodEnd.Equal(t0.Add(-time.Nanosecond)) {
			t.Errorf("explicit-ID tlog = %+v", old)
		}
	})
	t.Run("ctlogs", func(t *testing.T) {
		if n := len(tr.CTLogs()); n != 1 {
			t.Fatalf("%d ctlogs, want 1", n)
		}
	})
	t.Run("tsa", func(t *testing.T) {
		tsas := tr.TimestampingAuthorities()
		if len(tsas) != 1 {
			t.Fatalf("%d TSAs, want 1", len(tsas))
		}
		s, ok := tsas[0].(*root.SigstoreTimestampingAuthority)
		if !ok {
			t.Fatalf("TSA is %T", tsas[0])
		}
		if !s.Leaf.Equal(chain[0]) || !s.Root.Equal(chain[1]) || len(s.Intermediates) != 0 {
			t.Error("TSA chain not as exported")
		}
		if !s.ValidityPeriodStart.Equal(t0) || !s.ValidityPeriodEnd.Equal(t0.AddDate(2, 0, 0).Add(-time.Nanosecond)) {
			t.Errorf("TSA window = %v..%v", s.ValidityPeriodStart, s.ValidityPeriodEnd)
		}
	})
	t.Run("ca", func(t *testing.T) {
		cas := tr.FulcioCertificateAuthorities()
		if len(cas) != 1 {
			t.Fatalf("%d CAs, want 1", len(cas))
		}
		f := cas[0].(*root.FulcioCertificateAuthority)
		if !f.Root.Equal(ca) || !f.ValidityPeriodStart.Equal(t0) {
			t.Errorf("CA = %+v", f)
		}
	})
	t.Run("keys", func(t *testing.T) {
		tm, err := r.TrustedMaterial()
		if err != nil {
			t.Fatal(err)
		}
		id, err := KeyID(keyA.Public())
		if err != nil {
			t.Fatal(err)
		}
		v, err := tm.PublicKeyVerifier(id)
		if err != nil {
			t.Fatalf("key not found by its hint: %v", err)
		}
		if v.ValidAtTime(t0.Add(-time.Second)) || !v.ValidAtTime(t0) || !v.ValidAtTime(t0.AddDate(10, 0, 0)) {
			t.Error("key window not as exported")
		}
		if _, err := tm.PublicKeyVerifier("unknown"); err == nil {
			t.Error("unknown key ID found")
		}
		if len(tm.TimestampingAuthorities()) != 1 || len(tm.RekorLogs()) != 2 {
			t.Error("trusted material lost the trusted root")
		}
	})
}

func TestValidateRejects(t *testing.T) {
	chain := tsaChain(t, t0)
	other := tsaChain(t, t0)
	p256 := mustECDSA(t, elliptic.P256()).Public()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	backwards := Window{Start: t0, End: t0.Add(-time.Second)}
	tests := []struct {
		name string
		r    Root
	}{
		{"tlog without key", Root{Tlogs: []TransparencyLog{{BaseURL: "x", Window: Window{Start: t0}}}}},
		{"tlog without start", Root{Tlogs: []TransparencyLog{{BaseURL: "x", PublicKey: p256}}}},
		{"tlog backwards window", Root{Tlogs: []TransparencyLog{{BaseURL: "x", PublicKey: p256, Window: backwards}}}},
		{"tlog small rsa", Root{Tlogs: []TransparencyLog{{BaseURL: "x", PublicKey: &small.PublicKey, Window: Window{Start: t0}}}}},
		{"duplicate tlogs", Root{Tlogs: []TransparencyLog{
			{BaseURL: "a", PublicKey: p256, Window: Window{Start: t0}},
			{BaseURL: "b", PublicKey: p256, Window: Window{Start: t0}},
		}}},
		{"tsa empty chain", Root{TSAs: []TimestampAuthority{{URI: "x"}}}},
		{"tsa without leaf", Root{TSAs: []TimestampAuthority{{URI: "x", Chain: chain[1:]}}}},
		{"tsa broken chain", Root{TSAs: []TimestampAuthority{{URI: "x", Chain: []*x509.Certificate{chain[0], other[1]}}}}},
		{"tsa nil cert", Root{TSAs: []TimestampAuthority{{URI: "x", Chain: []*x509.Certificate{nil}}}}},
		{"tsa backwards window", Root{TSAs: []TimestampAuthority{{URI: "x", Chain: chain, Window: backwards}}}},
		{"ca empty chain", Root{CertificateAuthorities: []CertificateAuthority{{URI: "x"}}}},
		{"key without public key", Root{Keys: []Key{{ID: "a"}}}},
		{"key backwards window", Root{Keys: []Key{{PublicKey: p256, Window: backwards}}}},
		{"duplicate keys", Root{Keys: []Key{{PublicKey: p256}, {PublicKey: p256}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Validate(); err == nil {
				t.Fatal("Validate succeeded, want error")
			}
		})
	}
	t.Run("empty root is valid", func(t *testing.T) {
		if err := (&Root{}).Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLoadTrustedRoot(t *testing.T) {
	tests := []struct {
		file                     string
		tlogs, ctlogs, cas, tsas int
	}{
		{"public-good-trusted_root.json", -1, -1, -1, -1},
		{"public-key-validity-root.json", 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			want, err := root.NewTrustedRootFromJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			r, err := LoadTrustedRoot(b)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tsas >= 0 && len(r.TSAs) != tt.tsas {
				t.Errorf("%d TSAs, want %d", len(r.TSAs), tt.tsas)
			}
			// Round trip: what we write back, sigstore-go reads as the original.
			out, err := r.MarshalTrustedRootJSON()
			if err != nil {
				t.Fatalf("re-export: %v", err)
			}
			got, err := root.NewTrustedRootFromJSON(out)
			if err != nil {
				t.Fatalf("sigstore-go rejects re-export: %v", err)
			}
			compareLogs(t, "tlog", want.RekorLogs(), got.RekorLogs())
			compareLogs(t, "ctlog", want.CTLogs(), got.CTLogs())
			if len(got.TimestampingAuthorities()) != len(want.TimestampingAuthorities()) ||
				len(got.FulcioCertificateAuthorities()) != len(want.FulcioCertificateAuthorities()) {
				t.Error("authorities lost in round trip")
			}
			for i, a := range want.TimestampingAuthorities() {
				w, g := a.(*root.SigstoreTimestampingAuthority), got.TimestampingAuthorities()[i].(*root.SigstoreTimestampingAuthority)
				if !w.ValidityPeriodStart.Equal(g.ValidityPeriodStart) || !w.ValidityPeriodEnd.Equal(g.ValidityPeriodEnd) ||
					!w.Root.Equal(g.Root) || (w.Leaf == nil) != (g.Leaf == nil) || w.URI != g.URI {
					t.Errorf("TSA %d differs after round trip", i)
				}
			}
			for i, a := range want.FulcioCertificateAuthorities() {
				w, g := a.(*root.FulcioCertificateAuthority), got.FulcioCertificateAuthorities()[i].(*root.FulcioCertificateAuthority)
				if !w.ValidityPeriodStart.Equal(g.ValidityPeriodStart) || !w.ValidityPeriodEnd.Equal(g.ValidityPeriodEnd) ||
					!w.Root.Equal(g.Root) || len(w.Intermediates) != len(g.Intermediates) {
					t.Errorf("CA %d differs after round trip", i)
				}
			}
		})
	}
}

func compareLogs(t *testing.T, kind string, want, got map[string]*root.TransparencyLog) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%d %ss after round trip, want %d", len(got), kind, len(want))
	}
	for id, w := range want {
		g := got[id]
		if g == nil {
			t.Errorf("%s %s lost", kind, id)
			continue
		}
		if !w.ValidityPeriodStart.Equal(g.ValidityPeriodStart) || !w.ValidityPeriodEnd.Equal(g.ValidityPeriodEnd) || w.BaseURL != g.BaseURL {
			t.Errorf("%s %s differs: %+v vs %+v", kind, id, w, g)
		}
	}
}

func TestLoadTrustedRootRejects(t *testing.T) {
	tests := map[string]string{
		"not json":           "nope",
		"wrong media type":   `{"mediaType":"application/json"}`,
		"unknown field":      `{"mediaType":"` + TrustedRootMediaType + `","bogus":1}`,
		"bad certificate":    `{"mediaType":"` + TrustedRootMediaType + `","timestampAuthorities":[{"certChain":{"certificates":[{"rawBytes":"AAAA"}]}}]}`,
		"tlog without start": `{"mediaType":"` + TrustedRootMediaType + `","tlogs":[{"hashAlgorithm":"SHA2_256","logId":{"keyId":"AA=="},"publicKey":{"rawBytes":"AA==","keyDetails":"PKIX_ED25519"}}]}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadTrustedRoot([]byte(in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("LoadTrustedRoot error = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestWindowContains(t *testing.T) {
	tests := []struct {
		name string
		w    Window
		at   time.Time
		want bool
	}{
		{"open", Window{}, t0, true},
		{"at start", Window{Start: t0}, t0, true},
		{"before start", Window{Start: t0}, t0.Add(-1), false},
		{"just before end", Window{End: t0}, t0.Add(-1), true},
		{"at end (exclusive)", Window{End: t0}, t0, false},
		{"empty", Window{Start: t0, End: t0}, t0, false},
		{"after end", Window{Start: t0.Add(-time.Hour), End: t0}, t0.Add(1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Contains(tt.at); got != tt.want {
				t.Errorf("Contains = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzLoadTrustedRoot(f *testing.F) {
	// The public-good root is left out: at 30 KB it makes the fuzzer's
	// minimisation step take minutes.
	for _, name := range []string{"public-key-validity-root.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"mediaType":"` + TrustedRootMediaType + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := LoadTrustedRoot(b)
		if err != nil {
			return
		}
		// Whatever loads must be exportable unless it holds keys we do not
		// write (log keys of unusual sizes); and an export must load again.
		out, err := r.MarshalTrustedRootJSON()
		if err != nil {
			return
		}
		if _, err := LoadTrustedRoot(out); err != nil {
			t.Fatalf("export does not load again: %v\n%s", err, out)
		}
	})
}
