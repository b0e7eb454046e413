package server_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/signer"
)

// TestAuditKeyBundlesRefused: evidence signed by the server's audit key is
// made by the server alone (its decisions, audit entries and red flags
// statements), so no push route takes one from a client, whatever its
// predicate type and whoever pushes it: the server's own decision pushed
// back, statements of every pushable type signed with a copy of the audit
// key (timestamped by the server, so they would verify), the same with
// the key hint changed or removed, and a certificate holding the audit
// key. Each is refused with 403 for every role, and the index does not
// change. The log append and sign routes refuse the audit key too.
func TestAuditKeyBundlesRefused(t *testing.T) {
	ctx := context.Background()
	ts := start(t, server.Config{})
	dep := newClient(t, ts, api.RoleDeployer)
	sum := strings.Repeat("cd", 32)
	subject := []attest.Subject{{Name: "app", Digest: map[string]string{"sha256": sum}}}
	vsa := mustStatement(t, subject, attest.PredicateVSA, map[string]any{"verificationResult": "PASSED"})
	decision, err := dep.Sign(ctx, vsa)
	if err != nil {
		t.Fatalf("deployer's decision: %v", err)
	}

	auditKey := readAuditKey(t, ts.dir)
	stamped := signer.WithTimestampAuthority(newClient(t, ts, api.RoleBuilder).TimestampAuthority())
	sign := func(stmt []byte) []byte {
		t.Helper()
		b, err := signer.SignStatement(ctx, auditKey, stmt, stamped)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bundles := map[string][]byte{"the server's own decision": decision}
	for name, stmt := range map[string][]byte{
		"provenance": statement(t, "audit-key-1", "app"),
		"approval":   mustStatement(t, subject, attest.PredicateApproval, map[string]any{"approved": true}),
		"decision":   mustStatement(t, subject, attest.PredicateVSA, map[string]any{"verificationResult": "PASSED"}),
		"other type": mustStatement(t, subject, "https://example.com/anything/v1", map[string]any{}),
	} {
		b := sign(stmt)
		bundles["copied key, "+name] = b
		bundles["copied key, other hint, "+name] = withKey(t, b, strings.Repeat("ab", 32), nil)
		bundles["copied key, no hint, "+name] = withKey(t, b, "", nil)
		bundles["copied key in a certificate, "+name] = withKey(t, b, "", selfSigned(t, auditKey))
	}
	// The server's own decision under another key's certificate: the
	// signature is still the audit key's.
	bundles["the server's decision, another certificate"] = withKey(t, decision, "", selfSigned(t, newKey(t)))

	before := count(t, ts)
	for name, b := range bundles {
		for _, role := range api.Roles() {
			a := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[role], b)
			if role == api.RoleAuditor { // may push nothing
				if a.status != http.StatusForbidden {
					t.Errorf("auditor push of %s = %d %q; want 403", name, a.status, a.body)
				}
				continue
			}
			if a.status != http.StatusForbidden || !strings.Contains(a.body, "audit key") {
				t.Errorf("%s push of %s = %d %q; want 403 naming the audit key", role, name, a.status, a.body)
			}
		}
	}
	// The log: a replay of the decision's signature, and of one made with
	// the copy.
	for name, b := range map[string][]byte{"decision": decision, "copied": bundles["copied key, provenance"]} {
		for _, role := range []api.Role{api.RoleBuilder, api.RoleAdmin, api.RoleApprover, api.RoleDeployer} {
			if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", ts.tokens[role], replayLogRequest(t, b, ts.AuditPublicKey())); a.status != http.StatusForbidden || !strings.Contains(a.body, "audit key") {
				t.Errorf("%s log append of the %s signature = %d %q; want 403 naming the audit key", role, name, a.status, a.body)
			}
		}
	}
	// Signing: the audit key signs decisions only, for deployers and admins.
	for _, tc := range []struct {
		role api.Role
		stmt []byte
	}{
		{api.RoleBuilder, statement(t, "audit-key-2", "app")},
		{api.RoleAdmin, statement(t, "audit-key-3", "app")},
		{api.RoleBuilder, vsa},
		{api.RoleDeployer, mustStatement(t, subject, attest.PredicateApproval, map[string]any{})},
		{api.RoleApprover, vsa},
		{api.RoleAuditor, vsa},
	} {
		req, _ := json.Marshal(map[string]any{"statement": json.RawMessage(tc.stmt), "key": api.AuditKeyName})
		if a := do(t, ts, http.MethodPost, "/api/v1/sign", ts.tokens[tc.role], req); a.status != http.StatusForbidden {
			t.Errorf("%s sign with the audit key = %d %q; want 403", tc.role, a.status, a.body)
		}
	}
	// The builder's own bundle with the audit key's signature beside its
	// own: a bundle has one signature.
	own, err := signer.SignStatement(ctx, newKey(t), statement(t, "audit-key-4", "app"), stamped)
	if err != nil {
		t.Fatal(err)
	}
	two := editProto(t, own, func(pb *protobundle.Bundle) {
		env := pb.GetDsseEnvelope()
		h := sha256.Sum256(dsse.PAE(env.GetPayloadType(), env.GetPayload()))
		sig, err := auditKey.Sign(rand.Reader, h[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures = append(env.Signatures, &protodsse.Signature{Sig: sig})
	})
	if a := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], two); a.status != http.StatusBadRequest || !strings.Contains(a.body, "one signature") {
		t.Errorf("push of a bundle of two signatures = %d %q; want 400", a.status, a.body)
	}
	if n := count(t, ts); n != before {
		t.Errorf("index holds %d records after the refused requests; want %d", n, before)
	}
	// The builder's own bundles are still taken.
	if a := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], own); a.status != http.StatusCreated {
		t.Errorf("push of an unknown signer's bundle = %d %q; want 201", a.status, a.body)
	}
}

// mustStatement is the JSON of an in-toto statement.
func mustStatement(t *testing.T, subjects []attest.Subject, predicateType string, predicate any) []byte {
	t.Helper()
	st, err := attest.NewStatement(subjects, predicateType, predicate)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editProto is bundleJSON changed by edit.
func editProto(t *testing.T, bundleJSON []byte, edit func(*protobundle.Bundle)) []byte {
	t.Helper()
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(bundleJSON, pb); err != nil {
		t.Fatal(err)
	}
	edit(pb)
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withKey is bundleJSON naming another key (the signatures and log
// entries stay): a key hint, or a certificate.
func withKey(t *testing.T, bundleJSON []byte, hint string, cert []byte) []byte {
	t.Helper()
	return editProto(t, bundleJSON, func(pb *protobundle.Bundle) {
		if cert != nil {
			pb.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert}}
			return
		}
		pb.VerificationMaterial.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint}}
	})
}

// selfSigned is the DER of a self-signed certificate of key's public key.
func selfSigned(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "x " + hex.EncodeToString(serial.Bytes())},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
