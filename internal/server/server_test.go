package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

type testServer struct {
	*server.Server
	index  storetest.Store // Config.Index: SQLite in dir unless the test gave one
	url    string
	dir    string
	tokens map[api.Role]string
}

// Index returns the server's index with every method of a backend: the
// one the test gave, or the server's default SQLite index.
func (ts *testServer) Index() storetest.Store {
	if ts.index != nil {
		return ts.index
	}
	return ts.Server.Index().(storetest.Store)
}

func start(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	return startWith(t, cfg, func(h http.Handler, ln net.Listener) func() {
		hs := httptest.NewUnstartedServer(h)
		hs.Listener.Close()
		hs.Listener = ln
		hs.Start()
		return hs.Close
	})
}

// startWith opens a server on 127.0.0.1 with a token of every role, and
// serves its handler on the listener with serve, which returns how to
// stop serving.
func startWith(t *testing.T, cfg server.Config, serve func(http.Handler, net.Listener) func()) *testServer {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	cfg.BatchMaxAge = 5 * time.Millisecond
	if cfg.Index == nil {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		idx, err := store.OpenSQLite(filepath.Join(cfg.Dir, "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		cfg.Index = idx
	}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(s.Handler(), ln)
	t.Cleanup(func() { stop(); s.Close() })
	ts := &testServer{Server: s, index: cfg.Index.(storetest.Store), url: cfg.PublicURL, dir: cfg.Dir, tokens: map[api.Role]string{}}
	for _, r := range api.Roles() {
		tok, err := tokenfile.CreateToken(cfg.Dir, r, "", "test "+string(r))
		if err != nil {
			t.Fatal(err)
		}
		ts.tokens[r] = tok
	}
	return ts
}

func statement(t *testing.T, buildID string, artifact string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(artifact))
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://example.com/org/repo", Commit: strings.Repeat("ab", 20)}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/test@v1"},
			Metadata: &attest.BuildMetadata{InvocationID: buildID}},
	}
	return mustStatement(t, []attest.Subject{{Name: artifact, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateSLSAv1, prov)
}

func newClient(t *testing.T, ts *testServer, role api.Role) *client.Client {
	t.Helper()
	c, err := client.New(ts.url, ts.tokens[role], client.WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifyWithSigstoreGo checks a bundle the way a third party would: the
// exported trusted root plus the builder public key, requiring a log entry
// and a signed timestamp.
func verifyWithSigstoreGo(t *testing.T, c *client.Client, b []byte, artifact string) {
	t.Helper()
	ctx := context.Background()
	trJSON, err := c.TrustedRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := c.PublicKey(ctx, "builder")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trust.LoadTrustedRoot(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	tr.Keys = []trust.Key{{PublicKey: pub}}
	tm, err := tr.TrustedMaterial()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.NewTrustedRootFromJSON(trJSON); err != nil {
		t.Fatalf("sigstore-go refuses the trusted root: %v", err)
	}
	v, err := sgverify.NewVerifier(tm, sgverify.WithTransparencyLog(1), sgverify.WithSignedTimestamps(1))
	if err != nil {
		t.Fatal(err)
	}
	var sb bundle.Bundle
	if err := sb.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(artifact))
	if _, err := v.Verify(&sb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", sum[:]), sgverify.WithKey())); err != nil {
		t.Fatalf("sigstore-go: %v", err)
	}
}

func TestSignVerifySearchReplay(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	b, err := c.Sign(ctx, statement(t, "build-1", "app.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	verifyWithSigstoreGo(t, c, b, "app.tar.gz")
	ts.WaitRedFlags() // the build's red flags statement is about app.tar.gz too

	// Indexed, searchable by any role.
	for _, q := range []api.Query{{BuildID: "build-1"}, {SourceCommit: strings.Repeat("ab", 20)},
		{SubjectName: "app.tar.gz", ExcludePredicateTypes: []string{attest.PredicateRedFlags}}} {
		got, err := newClient(t, ts, api.RoleAuditor).Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !bytes.Equal(got[0].Bundle, b) || got[0].LogIndex != 0 || got[0].SignerKeyID == "" {
			t.Fatalf("search %+v = %d results, first %+v (bundle equal %v)", q, len(got), got[0], bytes.Equal(got[0].Bundle, b))
		}
	}
	// Pushing the same bundle again is idempotent.
	id, existed, err := c.Push(ctx, b)
	if err != nil || !existed || id == 0 {
		t.Fatalf("push again = %d, %v, %v", id, existed, err)
	}
	// A replayed build ID is refused.
	_, err = c.Sign(ctx, statement(t, "build-1", "other.tar.gz"))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("replay: %v", err)
	}
	// The log client sees a consistent log.
	lc, err := c.Log(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := lc.Checkpoint(ctx); err != nil || cp.Size != 2 { // the build and its red flags
		t.Fatalf("checkpoint = %v, %v", cp, err)
	}
}

func TestPush(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	signed, err := c.Sign(ctx, statement(t, "build-p", "p.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ts.WaitRedFlags() // its red flags are indexed too, after it
	other, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := signer.SignStatement(ctx, other, statement(t, "build-f", "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(signed, []byte(`"sig":"`), []byte(`"sig":"AAAA`), 1)
	for _, tc := range []struct {
		name    string
		body    []byte
		status  int
		existed bool
	}{
		{"foreign key, unverifiable, stored", foreign, http.StatusCreated, false},
		{"foreign again", foreign, http.StatusOK, true},
		{"own bundle", signed, http.StatusOK, true},
		{"tampered signature", tampered, http.StatusBadRequest, false},
		{"not json", []byte("{"), http.StatusBadRequest, false},
		{"not a bundle", []byte(`{"a":1}`), http.StatusBadRequest, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := ts.Index().Count(ctx)
			resp := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], tc.body)
			if resp.status != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.status, resp.body, tc.status)
			}
			after, _ := ts.Index().Count(ctx)
			if tc.status == http.StatusCreated && after != before+1 || tc.status != http.StatusCreated && after != before {
				t.Errorf("index grew from %d to %d", before, after)
			}
			if resp.status >= 400 && strings.Count(resp.body, "\n") != 1 {
				t.Errorf("error is not one line: %q", resp.body)
			}
		})
	}
}

type answer struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, ts *testServer, method, path, token string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if path == "/api/v1/timestamp" {
		req.Header.Set("Content-Type", "application/timestamp-query")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

func TestRoleMatrix(t *testing.T) {
	ts := start(t, server.Config{})
	all := append([]api.Role{}, api.Roles()...)
	type endpoint struct {
		method, path string
		body         func() []byte
		allowed      []api.Role // nil: public
		okStatus     int        // status for an allowed caller
	}
	n := 0
	signBody := func() []byte {
		n++
		return []byte(fmt.Sprintf(`{"statement":%s}`, statement(t, fmt.Sprintf("matrix-%d", n), "m.bin")))
	}
	builders := []api.Role{api.RoleBuilder, api.RoleAdmin}
	// Approvers and deployers log and timestamp what they sign themselves
	// (approvals, decisions); auditors write nothing.
	writers := []api.Role{api.RoleBuilder, api.RoleAdmin, api.RoleApprover, api.RoleDeployer}
	endpoints := []endpoint{
		{"GET", "/healthz", nil, nil, 200},
		// /metrics: the public series without a token (anonymous); with
		// one, all series for auditors and admins, lower roles refused.
		{"GET", "/metrics", nil, []api.Role{api.RoleAuditor, api.RoleAdmin}, 200},
		{"GET", "/checkpoint", nil, nil, 200},
		{"GET", "/checkpoints/0", nil, nil, 200},
		{"GET", "/proof/consistency?old=0&new=0", nil, nil, 200},
		{"GET", "/api/v1/trusted-root", nil, nil, 200},
		{"GET", "/api/v1/keys/builder", nil, nil, 200},
		{"POST", "/api/v2/log/entries", func() []byte { return []byte("{}") }, writers, 400},
		{"POST", "/cosignature", func() []byte { return []byte("x") }, []api.Role{api.RoleAdmin}, 400},
		{"POST", "/api/v1/timestamp", func() []byte { return []byte("x") }, writers, 400},
		{"POST", "/api/v1/sign", signBody, builders, 200},
		{"POST", "/api/v1/evidence", func() []byte { return []byte("{") },
			append([]api.Role{api.RoleApprover, api.RoleDeployer}, builders...), 400},
		{"GET", "/api/v1/evidence?limit=1", nil, all, 200},
		{"POST", "/api/v1/deployments", func() []byte { return []byte("{}") }, []api.Role{api.RoleDeployer, api.RoleAdmin}, 400},
		{"GET", "/api/v1/deployments?environment=prod", nil, all, 200},
		{"GET", "/api/v1/tokens", nil, []api.Role{api.RoleAdmin}, 200},
		{"POST", "/api/v1/tokens/revoke", func() []byte { return []byte("{}") }, []api.Role{api.RoleAdmin}, 400},
	}
	// Allowed without a token too (a token, when sent, is checked).
	anonymous := map[string]bool{"/metrics": true}
	for _, ep := range endpoints {
		callers := map[string]string{"no token": "", "garbage token": "cust_garbage"}
		for _, r := range all {
			callers[string(r)] = ts.tokens[r]
		}
		for name, tok := range callers {
			t.Run(ep.method+" "+ep.path+" as "+name, func(t *testing.T) {
				var body []byte
				if ep.body != nil {
					body = ep.body()
				}
				want := ep.okStatus
				switch {
				case ep.allowed == nil:
				case tok == "" && anonymous[ep.path]:
				case tok == "" || name == "garbage token":
					want = http.StatusUnauthorized
				default:
					want = http.StatusForbidden
					for _, r := range ep.allowed {
						if string(r) == name {
							want = ep.okStatus
						}
					}
				}
				got := do(t, ts, ep.method, ep.path, tok, body)
				if got.status != want {
					t.Errorf("status %d (%s), want %d", got.status, strings.TrimSpace(got.body), want)
				}
				// The refusal names the role with the right article.
				if a := map[string]string{"auditor": "an auditor token", "admin": "an admin token", "builder": "a builder token"}[name]; want == http.StatusForbidden && a != "" && !strings.Contains(got.body, a) {
					t.Errorf("refusal %q does not say %q", strings.TrimSpace(got.body), a)
				}
			})
		}
	}
}

func TestLimits(t *testing.T) {
	ts := start(t, server.Config{MaxBody: 4096, MaxInflight: 1})
	ctx := context.Background()
	tok := ts.tokens[api.RoleBuilder]
	logSize := func() uint64 {
		cp, err := ts.Log().Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cp.Size
	}
	big := []byte(`{"statement":` + strings.Repeat(" ", 5000) + `{}}`)
	for _, tc := range []struct {
		name   string
		path   string
		body   []byte
		status int
	}{
		{"oversized sign", "/api/v1/sign", big, http.StatusRequestEntityTooLarge},
		{"oversized push", "/api/v1/evidence", big, http.StatusRequestEntityTooLarge},
		{"malformed json", "/api/v1/sign", []byte(`{"statement":`), http.StatusBadRequest},
		{"unknown field", "/api/v1/sign", []byte(`{"statement":{},"x":1}`), http.StatusBadRequest},
		{"not a statement", "/api/v1/sign", []byte(`{"statement":{"_type":"x"}}`), http.StatusBadRequest},
		{"unknown entry kind", "/api/v2/log/entries", []byte(`{"unknownKind":{}}`), http.StatusBadRequest},
		{"bad signature entry", "/api/v2/log/entries", []byte(`{"hashedRekordRequestV002":{"digest":"AAAA","signature":{"content":"AAAA","verifier":{"publicKey":{"rawBytes":"AAAA"},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}}}}`), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n0, s0 := count(t, ts), logSize()
			got := do(t, ts, http.MethodPost, tc.path, tok, tc.body)
			if got.status != tc.status || strings.Count(got.body, "\n") != 1 {
				t.Fatalf("answer %d %q, want %d and one line", got.status, got.body, tc.status)
			}
			if n, s := count(t, ts), logSize(); n != n0 || s != s0 {
				t.Errorf("left something behind: index %d→%d, log %d→%d", n0, n, s0, s)
			}
		})
	}

	t.Run("stalled body holds no slot", func(t *testing.T) {
		// A request whose body never ends used to hold the only write
		// slot; the slot is now taken once the body is read, so other
		// writes are served (TestSlowBuildersDoNotStarveWrites holds 300
		// such requests; TestWritePool the 503 when slots run out).
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, ts.url+"/api/v1/sign", pr)
		req.Header.Set("Authorization", "Bearer "+tok)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		pw.Write([]byte(`{"statement":`))
		for range 20 {
			if got := do(t, ts, http.MethodPost, "/api/v1/evidence", tok, []byte("{")); got.status != http.StatusBadRequest {
				t.Fatalf("write beside a stalled body: %d %q", got.status, got.body)
			}
		}
		pw.CloseWithError(errors.New("client gave up"))
		<-done
	})
}

func count(t *testing.T, ts *testServer) int64 {
	t.Helper()
	n, err := ts.Index().Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBuilderKeyScope(t *testing.T) {
	dir := t.TempDir()
	k, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := signer.EncryptPrivateKey(k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/release.key"
	if err := os.WriteFile(path, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := start(t, server.Config{Dir: dir + "/data", Password: []byte("pw"), BuilderKeys: map[string]string{"release": path}})
	tok, err := tokenfile.CreateToken(ts.dir, api.RoleBuilder, "release", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{
		{"own key", `{"statement":%s}`, 200},
		{"other key", `{"statement":%s,"key":"builder"}`, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(tc.body, statement(t, "scope-"+tc.name, "s.bin"))
			if got := do(t, ts, http.MethodPost, "/api/v1/sign", tok, []byte(body)); got.status != tc.status {
				t.Errorf("status %d %q, want %d", got.status, got.body, tc.status)
			}
		})
	}
	fi, err := os.Stat(ts.dir + "/keys/log.key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log key mode: %v %v", fi, err)
	}
	b, _ := os.ReadFile(ts.dir + "/keys/log.key")
	if !bytes.Contains(b, []byte(signer.PrivateKeyPEMType)) {
		t.Error("log key is not encrypted with the server password")
	}
}

func TestPostgres(t *testing.T) {
	dsn := os.Getenv("CUSTODY_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CUSTODY_TEST_POSTGRES not set (scripts/postgres starts a server)")
	}
	pg, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ts := start(t, server.Config{Index: pg})
	c := newClient(t, ts, api.RoleBuilder)
	id := fmt.Sprintf("pg-%d", time.Now().UnixNano())
	b, err := c.Sign(context.Background(), statement(t, id, "pg.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Search(context.Background(), api.Query{BuildID: id})
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Bundle, b) {
		t.Fatalf("search = %v, %v", got, err)
	}
}

// A local build writes one bundle per output, all with the build's ID: the
// same signer and builder may push them all. The same build ID under another
// signer is a replay.
func TestPushSharedBuildID(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("test password")
	ciKey, _, err := signer.WriteKeyPair(dir+"/ci", signer.ECDSAP256, pw, false)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := signer.WriteKeyPair(dir+"/other", signer.ECDSAP256, pw, false)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, server.Config{Password: pw, BuilderKeys: map[string]string{"ci": ciKey, "other": otherKey}})
	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	load := func(path string) crypto.Signer {
		k, err := signer.Load(path, func() ([]byte, error) { return pw, nil })
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	key, other := load(ciKey), load(otherKey)
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		b, err := signer.SignStatement(ctx, key, statement(t, "build-shared", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, existed, err := c.Push(ctx, b); err != nil || existed {
			t.Fatalf("push %s = existed %v, %v", name, existed, err)
		}
	}
	b, err := signer.SignStatement(ctx, other, statement(t, "build-shared", "d.bin"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Push(ctx, b)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("push under another signer: %v, want 409", err)
	}
	// A key the server does not trust claims the build ID: stored
	// unverified, so its claim is no fact and reserves nothing.
	stranger, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = signer.SignStatement(ctx, stranger, statement(t, "build-shared", "e.bin")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Push(ctx, b); err != nil {
		t.Fatalf("push by an untrusted key: %v", err)
	}
	got, err := c.Search(ctx, api.Query{BuildID: "build-shared"})
	if err != nil || len(got) != 3 {
		t.Fatalf("search = %d records, %v; want 3", len(got), err)
	}
}

// /metrics reports what the issue names, in the Prometheus text format,
// with values that follow what the server did.
func TestMetrics(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	if _, err := c.Sign(ctx, statement(t, "build-m", "m.bin")); err != nil {
		t.Fatal(err)
	}
	other, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := signer.SignStatement(ctx, other, statement(t, "build-m2", "m2.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Push(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	a := do(t, ts, "GET", "/metrics", "", nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", a.status)
	}
	for _, want := range []string{
		`custody_log_appends_total{result="ok"} 1`,
		"custody_append_seconds_count 1",
		"custody_log_integration_delay_seconds_count",
		"custody_log_size 1",
		`custody_verifications_total{reason="unknown-signer",result="unverified"} 1`,
		`custody_http_request_duration_seconds_count{`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestPushIndexesCertificateIdentity pushes real keyless bundles whose
// certificate comes as a chain (bundle v0.1, v0.2) or names an otherName
// SAN, and finds each by the identity verification reports: what
// `incident open --identity --server` searches by.
func TestPushIndexesCertificateIdentity(t *testing.T) {
	// The server trusts the public-good Sigstore instance through its
	// custody trust root; without it the bundles are stored unverified,
	// under no identity (TestPushAttributesOnlyVerified).
	doc, _, admins := governedRoot(t)
	pg, err := os.ReadFile("../../testdata/corpus/public-good-trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	pgRoot, err := trust.LoadTrustedRoot(pg)
	if err != nil {
		t.Fatal(err)
	}
	doc.Root.Tlogs, doc.Root.CTLogs, doc.Root.CertificateAuthorities, doc.Root.TSAs = pgRoot.Tlogs, pgRoot.CTLogs, pgRoot.CertificateAuthorities, pgRoot.TSAs
	doc.Signatures = nil
	signRoot(t, doc, admins[:2]...)
	raw, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, server.Config{TrustRoot: raw})
	ctx := context.Background()
	for _, tc := range []struct{ file, identity string }{
		{"delegator-v1.10.0-push-v13.0.30.sigstore.json", "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v1.10.0"},
		{"delegator-v2.0.0-push-v13.0.30.sigstore.json", "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v2.0.0"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("../../testdata/corpus/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			resp := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], b)
			if resp.status != http.StatusCreated {
				t.Fatalf("push: status %d (%s)", resp.status, resp.body)
			}
			got, err := ts.Index().Search(ctx, store.Query{SignerIdentity: tc.identity})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("search by identity %s found %d bundles, want 1", tc.identity, len(got))
			}
			if got[0].IntegratedTime.IsZero() || got[0].LogIndex != -1 {
				t.Errorf("integrated %v, log index %d; want the public-good log's proven time and no index in this log", got[0].IntegratedTime, got[0].LogIndex)
			}
		})
	}
}
