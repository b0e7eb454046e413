package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// editBundle decodes a bundle's JSON, lets edit change it and encodes it
// again.
func editBundle(t *testing.T, b []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func field(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

// flipSpareBits changes the two bits of a 44-character base64 SHA-256
// that encode nothing: lax decoders give the same 32 bytes.
func flipSpareBits(t *testing.T, hint string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if len(hint) != 44 || hint[43] != '=' {
		t.Fatalf("hint %q is not a base64 SHA-256", hint)
	}
	i := strings.IndexByte(alphabet, hint[42])
	out := hint[:42] + string(alphabet[i^3]) + "="
	if raw, err := base64.StdEncoding.DecodeString(out); err != nil || len(raw) != sha256.Size {
		t.Fatalf("flipped hint %q does not decode: %v", out, err)
	}
	return out
}

// selfSignedBundle is a bundle signed by a key whose certificate names
// identity and is signed by itself, not by any CA the server trusts.
func selfSignedBundle(t *testing.T, identity string, stmt []byte) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(identity)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sigstore-intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(dsse.PAE(attest.PayloadType, stmt))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"mediaType":            signer.BundleMediaType,
		"verificationMaterial": map[string]any{"certificate": map[string]any{"rawBytes": der}},
		"dsseEnvelope": map[string]any{"payload": stmt, "payloadType": attest.PayloadType,
			"signatures": []any{map[string]any{"sig": sig}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPushAttributesOnlyVerified pushes, with a builder token, bundles
// that claim a signer, an identity, a log position or a time the server
// cannot verify against anything it trusts. Each is stored unverified
// (201): no signer key ID, no identity, no log index, no time. So the
// searches `incident open --key builder.pub` and `--identity` run (and
// "signed by" in search and the dashboard) never find them, and no
// incident quarantines a digest an attacker chose.
func TestPushAttributesOnlyVerified(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	builderPub, _ := ts.BuilderPublicKey(api.DefaultBuilderKey)
	builderHint, err := trust.KeyID(builderPub)
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	const identity = "https://github.com/victim/app/.github/workflows/release.yml@refs/heads/main"
	// Before the attack, one real bundle signed by the builder key.
	if _, err := c.Sign(ctx, statement(t, "build-real", "real.bin")); err != nil {
		t.Fatal(err)
	}

	forged := func(name, hint string) []byte {
		b, err := signer.SignStatement(ctx, attacker, statement(t, "build-"+name, name))
		if err != nil {
			t.Fatal(err)
		}
		return editBundle(t, b, func(m map[string]any) {
			field(m, "verificationMaterial", "publicKey")["hint"] = hint
			// A signature that matches no key.
			field(m, "dsseEnvelope")["signatures"].([]any)[0].(map[string]any)["sig"] = base64.StdEncoding.EncodeToString(make([]byte, 70))
		})
	}
	corpus, err := os.ReadFile("../../testdata/corpus/othername.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	otherLog := func(name string) []byte {
		b, err := signer.SignStatement(ctx, attacker, statement(t, "build-"+name, name))
		if err != nil {
			t.Fatal(err)
		}
		return editBundle(t, b, func(m map[string]any) {
			// A real entry of the public-good Rekor (for another
			// signature), claiming integration in 2000.
			var real map[string]any
			if err := json.Unmarshal(corpus, &real); err != nil {
				t.Fatal(err)
			}
			tle := field(real, "verificationMaterial")["tlogEntries"].([]any)[0].(map[string]any)
			tle["integratedTime"] = "946684800"
			field(m, "verificationMaterial")["tlogEntries"] = []any{tle}
		})
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
	}{
		{"hint plus newline", forged("newline.bin", builderHint+"\n")},
		{"hint with spare bits flipped", forged("spare.bin", flipSpareBits(t, builderHint))},
		{"hint in hex", forged("hex.bin", signer.KeyID(builderPub))},
		{"self-signed certificate", selfSignedBundle(t, identity, statement(t, "build-cert", "cert.bin"))},
		{"entry of another log", otherLog("otherlog.bin")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], tc.bundle)
			if resp.status != http.StatusCreated {
				t.Fatalf("push: status %d (%s), want 201 (stored unverified)", resp.status, resp.body)
			}
			var pr struct{ ID int64 }
			if err := json.Unmarshal([]byte(resp.body), &pr); err != nil {
				t.Fatal(err)
			}
			e, err := ts.Index().Get(ctx, pr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if e.SignerKeyID != "" || e.SignerIdentity != "" || e.SignerIssuer != "" {
				t.Errorf("indexed as signed by key %q identity %q issuer %q", e.SignerKeyID, e.SignerIdentity, e.SignerIssuer)
			}
			if e.LogIndex != -1 || !e.IntegratedTime.IsZero() {
				t.Errorf("indexed at log index %d, integrated %v; want -1 and none", e.LogIndex, e.IntegratedTime)
			}
			if e.BuilderID != "" || e.BuildID != "" || e.SourceURI != "" || e.SourceCommit != "" {
				t.Errorf("unverified claims indexed as facts: builder %q build %q source %q %q", e.BuilderID, e.BuildID, e.SourceURI, e.SourceCommit)
			}
			sum := sha256.Sum256([]byte(e.Subjects[0].Name))
			a := do(t, ts, http.MethodGet, "/api/v1/evidence?digest=sha256:"+hex.EncodeToString(sum[:]), ts.tokens[api.RoleAuditor], nil)
			var sr struct{ Evidence []map[string]any }
			if err := json.Unmarshal([]byte(a.body), &sr); err != nil || len(sr.Evidence) != 1 {
				t.Fatalf("search by digest: %s, %v", a.body, err)
			}
			if v, ok := sr.Evidence[0]["verified"]; v != false || !ok {
				t.Errorf("search answers verified: %v, want false", v)
			}
		})
	}
	// What incident open --key builder.pub and --identity find: only the
	// real bundle, and nothing by the self-signed identity.
	for _, sel := range []incident.Selector{{KeyID: signer.KeyID(builderPub)}, {Identity: identity}} {
		found, err := c.Search(ctx, sel.Query())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range found {
			names = append(names, e.Subjects[0].Name)
		}
		want := ""
		if sel.KeyID != "" {
			want = "real.bin"
		}
		if strings.Join(names, ",") != want {
			t.Errorf("%s finds %v, want [%s]", sel, names, want)
		}
	}
}
