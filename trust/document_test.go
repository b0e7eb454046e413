package trust

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// now is the time the document tests are checked at.
var now = t0.Add(24 * time.Hour)

func mustSign(t testing.TB, d *Document, keys ...crypto.Signer) {
	t.Helper()
	for _, k := range keys {
		if err := d.Sign(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
}

// roundTrip marshals and parses d, as a client reading a file would.
func roundTrip(t testing.TB, d *Document) *Document {
	t.Helper()
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseDocument(b)
	if err != nil {
		t.Fatalf("ParseDocument: %v\n%s", err, b)
	}
	return p
}

func adminKeys(ks ...crypto.Signer) []Key {
	var out []Key
	for i, k := range ks {
		out = append(out, Key{PublicKey: k.Public(), Identity: "admin" + string(rune('a'+i)) + "@example"})
	}
	return out
}

// v1 makes a signed version 1 with admins a, b (threshold 2) and a builder.
func v1(t testing.TB, a, b, builder crypto.Signer) *Document {
	t.Helper()
	d, err := NewDocument(adminKeys(a, b), 2, t0.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddKey(Key{PublicKey: builder.Public(), Role: RoleBuilder, Identity: "ci@example", Window: Window{Start: t0}}); err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 {
		t.Fatalf("editing a draft made version %d, want 1", d.Version)
	}
	mustSign(t, d, a, b)
	return roundTrip(t, d)
}

func TestDocumentRoundTrip(t *testing.T) {
	a, b := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P384())
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	d := v1(t, a, b, edPriv)
	if err := d.SetAuthorities(&Root{TSAs: []TimestampAuthority{{URI: "https://tsa.test", Chain: tsaChain(t, t0), Window: Window{Start: t0}}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.RevokeKey(d.Root.Keys[2].ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustSign(t, d, a, b)
	p := roundTrip(t, d)
	b1, _ := d.Marshal()
	b2, _ := p.Marshal()
	if string(b1) != string(b2) {
		t.Fatalf("round trip changed the document:\n%s\n%s", b1, b2)
	}
	if p.Version != 2 || len(p.Root.TSAs) != 1 || !p.Root.Keys[2].CompromisedSince.Equal(t0.Add(time.Hour)) || p.Root.Keys[2].Identity != "ci@example" {
		t.Fatalf("parsed %+v", p)
	}
	if err := VerifyDocument(p, now); err != nil {
		t.Fatal(err)
	}
}

func TestDocumentSignatureThreshold(t *testing.T) {
	a, b, c := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	builder := mustECDSA(t, elliptic.P256())
	trusted := v1(t, a, b, builder)

	// next is version 2: one more builder key, to be signed by signers.
	next := func(t *testing.T, signers ...crypto.Signer) *Document {
		d := roundTrip(t, trusted)
		if err := d.AddKey(Key{PublicKey: mustECDSA(t, elliptic.P256()).Public(), Role: RoleApprover}); err != nil {
			t.Fatal(err)
		}
		if d.Version != 2 || len(d.Signatures) != 0 {
			t.Fatalf("edit of a signed version: version %d with %d signatures, want 2 and none", d.Version, len(d.Signatures))
		}
		mustSign(t, d, signers...)
		return roundTrip(t, d)
	}
	tests := []struct {
		name    string
		doc     func(t *testing.T) *Document
		wantErr error
		wantMsg string
	}{
		{name: "2 of 2", doc: func(t *testing.T) *Document { return next(t, a, b) }},
		{name: "1 of 2", doc: func(t *testing.T) *Document { return next(t, a) }, wantErr: ErrThreshold, wantMsg: "signed by 1 of the trusted version 1's admins, needs 2"},
		{name: "same admin twice", doc: func(t *testing.T) *Document {
			d := next(t, a)
			d.Signatures = append(d.Signatures, d.Signatures[0])
			return d
		}, wantErr: ErrThreshold, wantMsg: "repeated signature"},
		{name: "non-admin signs", doc: func(t *testing.T) *Document { return next(t, a, c) }, wantErr: ErrThreshold, wantMsg: "not an admin of version 1"},
		{name: "builder key is no admin", doc: func(t *testing.T) *Document { return next(t, a, builder) }, wantErr: ErrThreshold, wantMsg: "not an admin"},
		{name: "signature under another admin's ID", doc: func(t *testing.T) *Document {
			d := next(t, a, c)
			d.Signatures[1].KeyID = d.Signatures[0].KeyID
			d.Signatures[0], d.Signatures[1] = d.Signatures[1], d.Signatures[0]
			return d
		}, wantErr: ErrThreshold},
		{name: "mix and match: signature of version 1 copied", doc: func(t *testing.T) *Document {
			d := next(t, a)
			for _, s := range trusted.Signatures {
				if s.KeyID != d.Signatures[0].KeyID {
					d.Signatures = append(d.Signatures, s)
				}
			}
			return d
		}, wantErr: ErrThreshold, wantMsg: "does not verify over version 2"},
		{name: "mix and match: signature of another root's version 2", doc: func(t *testing.T) *Document {
			other := next(t, a, b) // same version, different approver key
			d := next(t, a)
			d.Signatures = append(d.Signatures, other.Signatures[1])
			return d
		}, wantErr: ErrThreshold, wantMsg: "does not verify"},
		{name: "rollback to version 1", doc: func(t *testing.T) *Document { return trusted }, wantErr: ErrRollback},
		{name: "version gap", doc: func(t *testing.T) *Document {
			d := next(t, a, b)
			if err := d.SetThreshold(1); err != nil { // version 3
				t.Fatal(err)
			}
			mustSign(t, d, a, b)
			return d
		}, wantErr: ErrVersionGap},
		{name: "expired", doc: func(t *testing.T) *Document {
			d := roundTrip(t, trusted)
			if err := d.SetExpires(now.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			mustSign(t, d, a, b)
			return d
		}, wantErr: ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Update(trusted, tt.doc(t), now)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Update error = %v, want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestDocumentAdminKeyTypes(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, k := range map[string]crypto.Signer{
		"ECDSA P-256": mustECDSA(t, elliptic.P256()), "ECDSA P-384": mustECDSA(t, elliptic.P384()),
		"ECDSA P-521": mustECDSA(t, elliptic.P521()), "RSA 2048": rsaKey, "Ed25519": ed,
	} {
		t.Run(name, func(t *testing.T) {
			d, err := NewDocument(adminKeys(k), 1, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyDocument(d, now); !errors.Is(err, ErrThreshold) {
				t.Fatalf("unsigned: %v, want ErrThreshold", err)
			}
			mustSign(t, d, k)
			if err := VerifyDocument(roundTrip(t, d), now); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDocumentTampered(t *testing.T) {
	a, b := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	d := v1(t, a, b, mustECDSA(t, elliptic.P256()))
	raw, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env["payload"].(string))

	// A payload changed in its meaning parses but no longer verifies.
	tampered := strings.Replace(string(payload), `"threshold":2`, `"threshold":1`, 1)
	if tampered == string(payload) {
		t.Fatal("threshold not found in payload")
	}
	env["payload"] = base64.StdEncoding.EncodeToString([]byte(tampered))
	b2, _ := json.Marshal(env)
	p, err := ParseDocument(b2)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDocument(p, now); !errors.Is(err, ErrThreshold) {
		t.Fatalf("tampered threshold: VerifyDocument = %v, want ErrThreshold", err)
	}

	// A payload in another encoding of the same meaning is refused outright.
	for name, p := range map[string]string{
		"whitespace":    strings.Replace(string(payload), `"version":1`, `"version": 1`, 1),
		"duplicate key": strings.Replace(string(payload), `"version":1`, `"version":1,"version":1`, 1),
		"unknown field": strings.Replace(string(payload), `"version":1`, `"version":1,"x":1`, 1),
	} {
		env["payload"] = base64.StdEncoding.EncodeToString([]byte(p))
		b, _ := json.Marshal(env)
		if _, err := ParseDocument(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseDocument = %v, want ErrMalformed", name, err)
		}
	}
	// An envelope naming a member twice: encoding/json took the last one.
	dup := strings.Replace(string(raw), `"payloadType":`, `"payloadType":"application/vnd.in-toto+json","payloadType":`, 1)
	if dup == string(raw) {
		t.Fatal("payloadType not found in the envelope")
	}
	if _, err := ParseDocument([]byte(dup)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate payloadType: ParseDocument = %v, want ErrMalformed for the duplicate", err)
	}
	env["payload"] = base64.StdEncoding.EncodeToString(payload)
	env["payloadType"] = "application/vnd.in-toto+json"
	b3, _ := json.Marshal(env)
	if _, err := ParseDocument(b3); !errors.Is(err, ErrMalformed) {
		t.Errorf("other payload type: ParseDocument = %v, want ErrMalformed", err)
	}
}

// TestDocumentChainAdminRotation walks three versions: v2 rotates admin a
// out for c (signed by a and b of v1 and by b and c of v2), v3 is signed by
// v2's admins b and c only; a alone can sign nothing after.
func TestDocumentChainAdminRotation(t *testing.T) {
	a, b, c := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	d1 := v1(t, a, b, mustECDSA(t, elliptic.P256()))
	aID, _ := KeyID(a.Public())

	d2 := roundTrip(t, d1)
	if err := d2.RotateKey(aID, Key{PublicKey: c.Public()}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d2.Version != 2 || d2.Root.Keys[len(d2.Root.Keys)-1].Role != RoleAdmin {
		t.Fatalf("rotation: version %d, keys %+v", d2.Version, d2.Root.Keys)
	}
	mustSign(t, d2, b, c)
	d2only := roundTrip(t, d2)
	if err := Update(d1, d2only, now); !errors.Is(err, ErrThreshold) || !strings.Contains(err.Error(), "version 1's admins") {
		t.Fatalf("v2 without the old admin a: %v, want ErrThreshold of version 1's admins", err)
	}
	mustSign(t, d2, a)
	d2 = roundTrip(t, d2)

	d3 := roundTrip(t, d2)
	if err := d3.AddKey(Key{PublicKey: mustECDSA(t, elliptic.P256()).Public(), Role: RoleRebuilder, Identity: "rebuild@example"}); err != nil {
		t.Fatal(err)
	}
	mustSign(t, d3, a, b) // a's window in v2 ended before now
	if err := Update(d2, roundTrip(t, d3), now); !errors.Is(err, ErrThreshold) || !strings.Contains(err.Error(), "outside its window") {
		t.Fatalf("v3 signed by rotated-out admin a: %v, want ErrThreshold naming the window", err)
	}
	mustSign(t, d3, c)
	d3 = roundTrip(t, d3)

	got, err := UpdateChain(d1, []*Document{d2, d3}, now)
	if err != nil {
		t.Fatalf("UpdateChain: %v", err)
	}
	if got.Version != 3 {
		t.Fatalf("chain ended at version %d", got.Version)
	}
	if _, err := UpdateChain(d1, []*Document{d3, d2}, now); !errors.Is(err, ErrVersionGap) {
		t.Fatalf("out of order: %v, want ErrVersionGap", err)
	}
	if _, err := UpdateChain(d2, []*Document{d2, d3}, now); !errors.Is(err, ErrRollback) {
		t.Fatalf("equal version: %v, want ErrRollback", err)
	}
	// The trusted root may have expired; only the newest must not.
	if _, err := UpdateChain(d1, []*Document{d2, d3}, t0.AddDate(1, 0, 1)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: %v, want ErrExpired", err)
	}
}

func TestDocumentEditRules(t *testing.T) {
	a, b := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	builder := mustECDSA(t, elliptic.P256())
	d := v1(t, a, b, builder)
	bID, _ := KeyID(builder.Public())
	tests := []struct {
		name    string
		edit    func(d *Document) error
		wantErr string
	}{
		{"threshold above admins", func(d *Document) error { return d.SetThreshold(3) }, "needs at least 3 admin keys"},
		{"threshold zero", func(d *Document) error { return d.SetThreshold(0) }, "at least 1"},
		{"duplicate key", func(d *Document) error { return d.AddKey(Key{PublicKey: builder.Public(), Role: RoleApprover}) }, "same public key"},
		{"no role", func(d *Document) error { return d.AddKey(Key{PublicKey: mustECDSA(t, elliptic.P256()).Public()}) }, "role is missing"},
		{"unknown key", func(d *Document) error { return d.RevokeKey("nosuchkey", t0) }, "no key"},
		{"short reference", func(d *Document) error { return d.RevokeKey("ab", t0) }, "too short"},
		{"revoking an admin below threshold", func(d *Document) error {
			id, _ := KeyID(a.Public())
			return d.RevokeKey(id, t0)
		}, "needs at least 2 admin keys"},
		{"rotation before start", func(d *Document) error {
			return d.RotateKey(bID, Key{PublicKey: mustECDSA(t, elliptic.P256()).Public()}, t0.Add(-time.Hour))
		}, "before key"},
		{"rotate by hex ID", func(d *Document) error {
			raw, _ := base64.StdEncoding.DecodeString(bID)
			return d.RotateKey(hexString(raw)[:10], Key{PublicKey: mustECDSA(t, elliptic.P256()).Public()}, t0.Add(time.Hour))
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := roundTrip(t, d)
			before, _ := c.Marshal()
			err := tt.edit(c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Version != 2 || len(c.Signatures) != 0 {
					t.Fatalf("version %d, %d signatures", c.Version, len(c.Signatures))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			after, _ := c.Marshal()
			if string(before) != string(after) {
				t.Fatal("a refused edit changed the document")
			}
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestDocumentTestdata parses the committed example document, which seeds
// FuzzParseDocument.
func TestDocumentTestdata(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "custody-root.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDocument(d, d.Expires.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseDocument(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "custody-root.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"payloadType":"application/vnd.custody.trust-root+json","payload":"e30=","signatures":[]}`))
	if b, err := witnessed(f, 2, newWitness(f, "a.example/w"), newWitness(f, "b.example/w")).Marshal(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDocument(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("parsed document does not marshal: %v", err)
		}
		d2, err := ParseDocument(out)
		if err != nil {
			t.Fatalf("re-marshalled document does not parse: %v", err)
		}
		out2, _ := d2.Marshal()
		if string(out) != string(out2) {
			t.Fatal("marshal is not stable")
		}
		_ = VerifyDocument(d, now)
	})
}

// TestWriteTestdata regenerates testdata/custody-root.json when
// CUSTODY_WRITE_TESTDATA=1.
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("CUSTODY_WRITE_TESTDATA") != "1" {
		t.Skip("set CUSTODY_WRITE_TESTDATA=1 to regenerate")
	}
	a, b := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	d := v1(t, a, b, mustECDSA(t, elliptic.P256()))
	if err := d.SetAuthorities(&Root{TSAs: []TimestampAuthority{{URI: "https://tsa.custody.test/api/v1/timestamp", Chain: tsaChain(t, t0), Window: Window{Start: t0}}}}); err != nil {
		t.Fatal(err)
	}
	mustSign(t, d, a, b)
	out, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "custody-root.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}
