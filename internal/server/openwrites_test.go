package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/internal/tsa"
)

// hashedRekordBody is a valid Rekor v2 hashedrekord request for msg,
// signed by a fresh key.
func hashedRekordBody(t *testing.T, msg string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(msg))
	sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(&rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{Digest: sum[:], Signature: &rekorpb.Signature{Content: sig,
			Verifier: &rekorpb.Verifier{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// timestampQuery is a DER RFC 3161 request for msg.
func timestampQuery(t *testing.T, msg string) []byte {
	t.Helper()
	q, err := timestamp.CreateRequest(strings.NewReader(msg), &timestamp.RequestOptions{Hash: crypto.SHA256, Certificates: true})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestOpenWritesStockClient: with Config.Open, sigstore-go's own Rekor v2
// writer and TSA client, which send no token, log and timestamp a
// signature, and the bundle verifies against the exported trusted root;
// the writes are counted in /metrics.
func TestOpenWritesStockClient(t *testing.T) {
	ts := start(t, server.Config{Open: server.OpenWrites{Log: true, TSA: true, Rate: 1000}})
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	artifact := []byte("released by a stock client")
	pb, err := sign.Bundle(&sign.PlainData{Data: artifact}, kp, sign.BundleOptions{Context: context.Background(),
		TransparencyLogs:     []sign.Transparency{sign.NewRekor(&sign.RekorOptions{BaseURL: ts.url, Version: 2, Retries: 0})},
		TimestampAuthorities: []*sign.TimestampAuthority{sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: ts.url + tsa.Path})},
	})
	if err != nil {
		t.Fatalf("stock sigstore-go signing without a token: %v", err)
	}
	tr, err := root.NewTrustedRootFromJSON(ts.TrustedRoot())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.LoadVerifier(kp.GetPublicKey(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	keys := root.NewTrustedPublicKeyMaterialFromMapping(map[string]*root.ExpiringKey{string(kp.GetHint()): root.NewExpiringKey(pub, time.Time{}, time.Time{})})
	v, err := sgverify.NewVerifier(root.TrustedMaterialCollection{tr, keys}, sgverify.WithTransparencyLog(1), sgverify.WithSignedTimestamps(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(&bundle.Bundle{Bundle: pb}, sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(artifact)), sgverify.WithKey())); err != nil {
		t.Fatalf("sigstore-go refuses the bundle: %v", err)
	}
	m := do(t, ts, "GET", "/metrics", "", nil).body
	for _, want := range []string{`custody_open_writes_total{result="accepted",service="log"} 1`, `custody_open_writes_total{result="accepted",service="tsa"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestOpenWritesAttacker: what a caller without a token can do when log
// and TSA writes are open. It appends only self-authenticating entries:
// oversized, malformed, forged, DSSE and replayed requests are refused
// with one line and change nothing; the audit key's signatures stay the
// server's; a bad token on an open route is still refused; and every
// other write and read keeps its token.
func TestOpenWritesAttacker(t *testing.T) {
	ts := start(t, server.Config{MaxBody: 64 << 10, Open: server.OpenWrites{Log: true, TSA: true, Rate: 1000}})
	ctx := context.Background()
	if _, err := newClient(t, ts, api.RoleBuilder).Sign(ctx, statement(t, "open-1", "a.bin")); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenfile.CreateToken(ts.dir, api.RoleAuditor, "", "throwaway"); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, ts, api.RoleAdmin).RevokeToken(ctx, "throwaway"); err != nil { // an audit entry
		t.Fatal(err)
	}
	ts.WaitRedFlags() // the build's red flags: another entry
	before, indexed := logSize(t, ts), count(t, ts)
	real, err := newClient(t, ts, api.RoleAdmin).Search(ctx, api.Query{PredicateType: api.PredicateAudit, Limit: 1})
	if err != nil || len(real) != 1 {
		t.Fatalf("audit entries: %d, %v", len(real), err)
	}
	forged := hashedRekordBody(t, "forged")
	forged = bytes.Replace(forged, []byte(`"digest":"`), []byte(`"digest":"AAAA`), 1)
	refused := []struct {
		name, path string
		body       []byte
		status     int
		says       string
	}{
		{"oversized entry", "/api/v2/log/entries", bytes.Repeat([]byte("a"), 65<<10), http.StatusRequestEntityTooLarge, "over the limit"},
		{"malformed entry", "/api/v2/log/entries", []byte(`{"hashedRekordRequestV002":`), http.StatusBadRequest, "not JSON"},
		{"forged signature", "/api/v2/log/entries", forged, http.StatusBadRequest, "invalid entry"},
		{"dsse entry", "/api/v2/log/entries", dsseRequest(t, newKey(t), "application/vnd.in-toto+json", statement(t, "open-2", "b.bin")), http.StatusBadRequest, "must be hashedrekord"},
		{"audit key replay", "/api/v2/log/entries", replayLogRequest(t, real[0].Bundle, ts.AuditPublicKey()), http.StatusForbidden, "audit key"},
		{"malformed timestamp request", tsa.Path, []byte("not DER"), http.StatusBadRequest, ""},
		{"oversized timestamp request", tsa.Path, bytes.Repeat([]byte{0x30}, 65<<10), http.StatusRequestEntityTooLarge, ""},
	}
	for _, tc := range refused {
		a := do(t, ts, http.MethodPost, tc.path, "", tc.body)
		if a.status != tc.status || !strings.Contains(a.body, tc.says) || strings.Count(a.body, "\n") != 1 {
			t.Errorf("%s: %d %q, want one line of %d saying %q", tc.name, a.status, a.body, tc.status, tc.says)
		}
	}
	// A replayed entry is not appended twice: Rekor v2's 409 and index.
	entry := hashedRekordBody(t, "once")
	if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", "", entry); a.status != http.StatusCreated {
		t.Fatalf("open append: %d %q", a.status, a.body)
	}
	if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", "", entry); a.status != http.StatusConflict || a.header.Get("X-Log-Index") != fmt.Sprint(before) {
		t.Errorf("replayed append: %d %q x-log-index %q, want 409 naming index %d", a.status, a.body, a.header.Get("X-Log-Index"), before)
	}
	if got := logSize(t, ts); got != before+1 {
		t.Errorf("log grew from %d to %d; want one entry more", before, got)
	}
	if got := count(t, ts); got != indexed {
		t.Errorf("index holds %d records, want %d: open writes never index", got, indexed)
	}
	// A token, when sent, is checked even on an open route.
	if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", "cust_garbage", hashedRekordBody(t, "x")); a.status != http.StatusUnauthorized {
		t.Errorf("open route with a bad token: %d %q, want 401", a.status, a.body)
	}
	if a := do(t, ts, http.MethodPost, tsa.Path, ts.tokens[api.RoleAuditor], timestampQuery(t, "x")); a.status != http.StatusForbidden {
		t.Errorf("open route with an auditor token: %d %q, want 403", a.status, a.body)
	}
	for _, ep := range [][2]string{
		{"POST", "/api/v1/sign"}, {"POST", "/api/v1/evidence"}, {"GET", "/api/v1/evidence?limit=1"},
		{"POST", "/api/v1/deployments"}, {"GET", "/api/v1/deployments?environment=prod"}, {"POST", "/cosignature"},
		{"POST", "/api/v1/trust-root"}, {"POST", "/api/v1/policies"}, {"GET", "/api/v1/policies/prod"},
		{"POST", "/api/v1/incidents"}, {"GET", "/api/v1/incidents"}, {"GET", "/api/v1/tokens"}, {"POST", "/api/v1/tokens/revoke"},
	} {
		if a := do(t, ts, ep[0], ep[1], "", []byte("{}")); a.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d %q, want 401", ep[0], ep[1], a.status, a.body)
		}
	}
	m := do(t, ts, "GET", "/metrics", "", nil).body
	for _, want := range []string{`custody_open_writes_total{result="refused",service="log"} 5`, `custody_open_writes_total{result="duplicate",service="log"} 1`,
		`custody_open_writes_total{result="refused",service="tsa"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestOpenWritesClosedByDefault: without Config.Open a stock client's
// write is refused as before (cosign's "401: missing bearer token").
func TestOpenWritesClosedByDefault(t *testing.T) {
	ts := start(t, server.Config{})
	for _, path := range []string{"/api/v2/log/entries", tsa.Path} {
		if a := do(t, ts, http.MethodPost, path, "", hashedRekordBody(t, "x")); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "missing bearer token") {
			t.Errorf("%s without a token on a closed server: %d %q", path, a.status, a.body)
		}
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip, another client address as the server sees it.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func postFrom(t *testing.T, hc *http.Client, url, token string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

// TestOpenWritesRateLimit: one client address that uses up its rate gets
// 429 with Retry-After, while another address and a token holder go on.
func TestOpenWritesRateLimit(t *testing.T) {
	ts := start(t, server.Config{Open: server.OpenWrites{TSA: true, Rate: 0.001, Burst: 3}})
	greedy, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	for i := range 3 {
		if a := postFrom(t, greedy, ts.url+tsa.Path, "", timestampQuery(t, "burst")); a.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %q", i, a.status, a.body)
		}
	}
	a := postFrom(t, greedy, ts.url+tsa.Path, "", timestampQuery(t, "over"))
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "per client address") {
		t.Errorf("over the rate: %d %q Retry-After %q, want 429", a.status, a.body, a.header.Get("Retry-After"))
	}
	if a := postFrom(t, other, ts.url+tsa.Path, "", timestampQuery(t, "other")); a.status != http.StatusOK {
		t.Errorf("another client address: %d %q, want 200", a.status, a.body)
	}
	if a := postFrom(t, greedy, ts.url+tsa.Path, ts.tokens[api.RoleBuilder], timestampQuery(t, "token")); a.status != http.StatusOK {
		t.Errorf("a token holder from the limited address: %d %q, want 200", a.status, a.body)
	}
	if m := do(t, ts, "GET", "/metrics", "", nil).body; !strings.Contains(m, `custody_open_writes_total{result="rate_limited",service="tsa"} 1`) {
		t.Errorf("/metrics does not count the rate-limited request")
	}
}
