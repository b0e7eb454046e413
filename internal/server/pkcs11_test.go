//go:build cgo

package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

// tokenKey creates a key in the SoftHSM2 token scripts/softhsm initializes
// and returns its URI (PIN included); it skips without SOFTHSM2_CONF.
func tokenKey(t *testing.T, name string) string {
	t.Helper()
	if os.Getenv("SOFTHSM2_CONF") == "" {
		t.Skip("SOFTHSM2_CONF not set; run eval \"$(scripts/softhsm)\" first")
	}
	module := os.Getenv("CUSTODY_TEST_PKCS11_MODULE")
	if module == "" {
		module = signer.DefaultPKCS11Module
	}
	pin := os.Getenv("CUSTODY_TEST_PKCS11_PIN")
	if pin == "" {
		pin = "1234"
	}
	b := make([]byte, 6)
	rand.Read(b)
	uri := "pkcs11:token=custody;object=server-" + name + "-" + hex.EncodeToString(b) + "?module-path=" + module + "&pin-value=" + pin
	k, err := signer.GeneratePKCS11(uri, signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	return uri
}

// TestPKCS11Keys runs the server with its log, TSA, audit and builder keys in a
// token: bundles it signs verify with sigstore-go, and no key file is
// written for them.
func TestPKCS11Keys(t *testing.T) {
	logURI, tsaURI, builderURI, auditURI := tokenKey(t, "log"), tokenKey(t, "tsa"), tokenKey(t, "builder"), tokenKey(t, "audit")
	ts := start(t, server.Config{LogKey: logURI, TSAKey: tsaURI, AuditKey: auditURI, BuilderKeys: map[string]string{"builder": builderURI}})
	for _, f := range []string{"log.key", "tsa.key", "builder.key", "audit.key"} {
		if _, err := os.Stat(filepath.Join(ts.dir, "keys", f)); err == nil {
			t.Errorf("keys/%s written although the key is in the token", f)
		}
	}
	bk, err := signer.LoadPKCS11(builderURI)
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	if pub, ok := ts.BuilderPublicKey("builder"); !ok || signer.KeyID(pub) != signer.KeyID(bk.Public()) {
		t.Fatal("the builder key served is not the token's")
	}
	ak, err := signer.LoadPKCS11(auditURI)
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	if signer.KeyID(ts.AuditPublicKey()) != signer.KeyID(ak.Public()) {
		t.Fatal("the audit key is not the token's")
	}

	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	b, err := c.Sign(ctx, statement(t, "hsm-build-1", "app.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	verifyWithSigstoreGo(t, c, b, "app.tar.gz")

	// The log's key is its identity: another log key is refused.
	_, err = server.Open(ctx, server.Config{Dir: ts.dir, LogKey: tokenKey(t, "other-log")})
	if err == nil || !strings.Contains(err.Error(), "not the key this log was created with") {
		t.Fatalf("another log key: %v", err)
	}
	// The trusted root exported from the data directory names the token's
	// log key (recorded in keys/log.pub).
	exported, err := server.ExportTrustedRoot(ts.dir, ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(exported) != string(ts.TrustedRoot()) {
		t.Error("trusted root exported from the data directory differs from the served one")
	}
}

func TestPKCS11KeyErrors(t *testing.T) {
	uri := tokenKey(t, "builder")
	wrong := strings.Replace(uri, "pin-value=", "pin-value=0", 1)
	_, err := server.Open(context.Background(), server.Config{Dir: t.TempDir(), BuilderKeys: map[string]string{"ci": wrong}})
	if err == nil || !strings.Contains(err.Error(), "builder key ci") || !strings.Contains(err.Error(), "wrong PIN") {
		t.Fatalf("wrong PIN: %v", err)
	}
	pin := uri[strings.Index(uri, "pin-value=")+len("pin-value="):]
	if strings.Contains(err.Error(), "0"+pin) {
		t.Fatalf("error shows the PIN: %v", err)
	}
	missing := strings.Replace(uri, "object=server-", "object=missing-", 1)
	_, err = server.Open(context.Background(), server.Config{Dir: t.TempDir(), TSAKey: missing})
	if err == nil || !strings.Contains(err.Error(), "TSA key") || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("missing key: %v", err)
	}
}

// TestPKCS11CA runs the certificate authority with its CA and CT keys in
// a token: keyless bundles verify with the SCT, and no key file is
// written for them.
func TestPKCS11CA(t *testing.T) {
	caURI, ctURI := tokenKey(t, "ca"), tokenKey(t, "ct")
	srv := startCA(t, func(c *server.Config) { c.CA.Key, c.CA.CTKey = caURI, ctURI })
	for _, f := range []string{"ca.key", "ct.key"} {
		if _, err := os.Stat(filepath.Join(srv.dir, "keys", f)); err == nil {
			t.Errorf("keys/%s written although the key is in the token", f)
		}
	}
	_, _, bundleJSON, digest := keylessBundle(t, srv)
	tm, err := srv.TrustedMaterial()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(context.Background(), bundleJSON, verify.Artifact{Digests: digest}, tm,
		verify.Requirements{CertificateIdentity: caIdentity, CertificateOIDCIssuer: srv.issuer.URL()})
	if err != nil || !rep.Verified {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}
