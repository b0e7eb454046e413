package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/packer"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
)

// The pack table (issue 17): for every deploy scenario custody tests, a
// pack made from a real server's evidence decides as the server does.
// One in-process custody server holds every artifact; for each row the
// server's decision is 'custody policy check --server' (the decision and
// its failures) and 'custody deploy --server' (the quarantine), the pack
// is made both ways ('custody pack --server --key packer.key' and
// 'custody pack --server', signed by the audit key) and decided offline by
// pack.Device under the device's copy of trust root version 1; for the
// rows marked cli also by 'custody verify --pack' and the lean
// cmd/custody-verify. Allow/deny, every failing requirement with its
// message and fix, what passed, the bundles considered and the bundles
// rejected (with why) must be the same.

const tablePassword = "correct horse battery staple"

// tableEnv is the server, the keys and the files of the table.
type tableEnv struct {
	t       testing.TB
	dir     string // work directory: keys, trust roots, policies, packs
	data    string // the server's data directory
	url     string
	srv     *server.Server
	handler swapHandler
	tokens  map[string]string // role or "builder:KEY" -> token
	pubs    map[string]crypto.PublicKey
	ids     map[string]string // key name -> key ID (hex)
	signers map[string]crypto.Signer
	lean    string // the lean verifier binary, or "" (built lazily)
	leanErr error
	once    sync.Once
	mu      sync.Mutex // guards seq
	seq     int
	parent  testing.TB // e.t outside the subtests
}

// swapHandler serves with the handler of the server running now (the
// table restarts its server once, on the same address, to give it a
// trust root that names its own log).
type swapHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// Keys of the table. Builder keys are the server's (builder tokens sign
// with them; plain PKCS#8 files, as a server without a password keeps
// them); admin and packer are encrypted key files for the CLI; the rest
// sign in the test as 'custody approve' and 'custody rebuild' would
// (through the server's log and timestamp authority). Scrypt would
// otherwise take most of the table's time.
var (
	tableBuilderKeys = []string{"ci", "b2", "c3", "q4"}
	tableCLIKeys     = []string{"admin", "packer"}
	tableLocalKeys   = []string{"admin", "packer", "alice", "alice2", "bob", "bob2", "dave", "rebuilder"}
)

// newKey makes the key name: NAME.pub, and NAME.key for builder and CLI
// keys.
func (e *tableEnv) newKey(name string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	e.signers[name] = k
	e.addPub(name, k.Public())
	pub, err := signer.MarshalPublicKey(k.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	e.write(name+".pub", pub)
	var priv []byte
	switch {
	case slices.Contains(tableCLIKeys, name):
		if priv, err = signer.EncryptPrivateKey(k, []byte(tablePassword)); err != nil {
			e.t.Fatal(err)
		}
	case slices.Contains(tableBuilderKeys, name):
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			e.t.Fatal(err)
		}
		priv = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	default:
		return
	}
	e.write(name+".key", priv)
}

func newTableEnv(t testing.TB) *tableEnv {
	e := &tableEnv{t: t, parent: t, dir: t.TempDir(), tokens: map[string]string{}, pubs: map[string]crypto.PublicKey{},
		ids: map[string]string{}, signers: map[string]crypto.Signer{}}
	e.data = filepath.Join(e.dir, "srv")
	t.Setenv("CUSTODY_PASSWORD", tablePassword)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(e.dir, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(e.dir, "state"))
	t.Setenv("CUSTODY_TOKEN", "")
	t.Setenv("USER", "packtable")
	for _, k := range append(append([]string{}, tableBuilderKeys...), tableLocalKeys...) {
		e.newKey(k)
	}
	hs := httptest.NewServer(&e.handler)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	t.Setenv("CUSTODY_SERVER", e.url)

	// First start: the server makes its log, TSA and audit keys; the trust
	// root names them, then the server runs under it.
	e.start(nil)
	cl := e.client(api.RoleAuditor)
	tr, err := cl.TrustedRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.write("trusted_root.json", tr)
	pem, err := cl.PublicKey(context.Background(), api.AuditKeyName)
	if err != nil {
		t.Fatal(err)
	}
	e.write("audit.pub", pem)
	audit, err := signer.ParsePublicKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	e.addPub("audit", audit)
	e.srv.Close()

	e.custody(0, "trust", "init", "--admin", e.path("admin.pub"), "--threshold", "1", "--out", e.path("root.json"))
	roles := map[string]string{"ci": "builder", "b2": "builder", "c3": "builder", "q4": "builder",
		"alice": "approver", "bob": "approver", "dave": "approver", "rebuilder": "rebuilder", "packer": "packer", "audit": "packer"}
	for _, k := range sortedKeysOf(roles) {
		e.custody(0, "trust", "add-key", "--root", e.path("root.json"), "--key", e.path(k+".pub"), "--role", roles[k],
			"--identity", k, "--valid-from", "2020-01-01T00:00:00Z")
	}
	e.custody(0, "trust", "set", "--root", e.path("root.json"), "--trusted-root", e.path("trusted_root.json"))
	e.custody(0, "trust", "sign", "--root", e.path("root.json"), "--key", e.path("admin.key"))
	root, err := os.ReadFile(e.path("root.json"))
	if err != nil {
		t.Fatal(err)
	}
	e.write("device-root.json", root)
	e.start(root)
	for _, role := range []api.Role{api.RoleAdmin, api.RoleApprover, api.RoleDeployer, api.RoleAuditor} {
		e.token(string(role), role, "")
	}
	for _, k := range tableBuilderKeys {
		e.token("builder:"+k, api.RoleBuilder, k)
	}
	return e
}

func (e *tableEnv) addPub(name string, pub crypto.PublicKey) {
	e.pubs[name] = pub
	id, err := gate.KeyID(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	e.ids[name] = id
}

// start opens the server on the data directory with trust root root (nil:
// none yet) and serves it on the table's address.
func (e *tableEnv) start(root []byte) {
	keys := map[string]string{}
	for _, k := range tableBuilderKeys {
		keys[k] = e.path(k + ".key")
	}
	s, err := server.Open(context.Background(), server.Config{Dir: e.data, PublicURL: e.url,
		BuilderKeys: keys, TrustRoot: root, Packs: packer.Loopback, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		e.t.Fatalf("couldn't open the server: %v", err)
	}
	e.srv = s
	e.handler.mu.Lock()
	e.handler.h = s.Handler()
	e.handler.mu.Unlock()
	e.t.Cleanup(func() { s.Close() })
}

func (e *tableEnv) token(name string, role api.Role, key string) {
	tok, err := tokenfile.CreateToken(e.data, role, key, "table "+strings.ReplaceAll(name, ":", "-"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens[name] = tok
}

func (e *tableEnv) client(role api.Role) *client.Client {
	tok, err := tokenfile.CreateToken(e.data, role, "", fmt.Sprintf("table client %d", e.next()))
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := client.New(e.url, tok, client.WithCheckpointDir(e.t.TempDir()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *tableEnv) clientAs(name string) *client.Client {
	c, err := client.New(e.url, e.tokens[name], client.WithCheckpointDir(e.t.TempDir()))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *tableEnv) next() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return e.seq
}

func (e *tableEnv) path(name string) string { return filepath.Join(e.dir, name) }

func (e *tableEnv) write(name string, b []byte) {
	if err := os.WriteFile(e.path(name), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run runs custody in this process with the token of as ("" none) and
// returns its exit code and output.
func (e *tableEnv) run(as string, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	os.Setenv("CUSTODY_TOKEN", e.tokens[as])
	defer os.Setenv("CUSTODY_TOKEN", "")
	var out, errb bytes.Buffer
	null, err := os.Open(os.DevNull)
	if err != nil {
		e.t.Fatal(err)
	}
	defer null.Close()
	code = Main(args, null, &out, &errb)
	return code, out.String(), errb.String()
}

// custody runs custody as admin and fails the test unless it exits want.
func (e *tableEnv) custody(want int, args ...string) string {
	e.t.Helper()
	code, out, errs := e.run("admin", args...)
	if code != want {
		e.t.Fatalf("custody %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out
}

// pushPolicy signs and pushes the policy of env (YAML with @KEY@ standing
// for key IDs).
func (e *tableEnv) pushPolicy(env, tmpl string) {
	e.t.Helper()
	y := regexp.MustCompile(`@([a-z0-9]+)@`).ReplaceAllStringFunc(tmpl, func(m string) string {
		id, ok := e.ids[strings.Trim(m, "@")]
		if !ok {
			e.t.Fatalf("policy names unknown key %s", m)
		}
		return id
	})
	e.write(env+".yaml", []byte(y))
	e.custody(0, "policy", "sign", e.path(env+".yaml"), "--key", e.path("admin.key"), "--envelope", e.path(env+".signed.json"))
	e.custody(0, "policy", "push", e.path(env+".signed.json"))
}

// artifact writes a new artifact file and returns its path and digest.
func (e *tableEnv) artifact(name string) (path, digest string) {
	n := e.next()
	content := fmt.Sprintf("%s %d\n", name, n)
	path = e.path(fmt.Sprintf("art-%s-%d", strings.ReplaceAll(name, " ", "-"), n))
	e.write(filepath.Base(path), []byte(content))
	sum := sha256.Sum256([]byte(content))
	return path, "sha256:" + hex.EncodeToString(sum[:])
}

// build is the provenance of one build.
type tbuild struct {
	key, builder, repo, ref string
	commitSeed              string
	dirty                   bool
	finished                time.Time
}

func (e *tableEnv) statement(name, digest, predicateType string, predicate any) []byte {
	st, err := attest.NewStatement([]attest.Subject{{Name: name, Digest: map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}},
		predicateType, predicate)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// provenance has the server sign the provenance of b with b.key; it
// returns the bundle's SHA-256 and the build ID.
func (e *tableEnv) provenance(name, digest string, b tbuild) (bundleSHA, buildID string) {
	e.t.Helper()
	buildID = fmt.Sprintf("build-%d", e.next())
	fin := b.finished
	if fin.IsZero() {
		fin = time.Now().Add(-time.Minute)
	}
	start := fin.Add(-30 * time.Second)
	_, _, head := commitsOf(b)
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://" + b.repo, Ref: b.ref, Commit: head, Dirty: b.dirty}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: b.builder},
			Metadata: &attest.BuildMetadata{InvocationID: buildID, StartedOn: &start, FinishedOn: &fin}},
	}
	bundle, err := e.clientAs("builder:"+b.key).Sign(context.Background(), e.statement(name, digest, attest.PredicateSLSAv1, prov))
	if err != nil {
		e.t.Fatalf("sign provenance: %v", err)
	}
	sum := sha256.Sum256(bundle)
	return hex.EncodeToString(sum[:]), buildID
}

// signed has the server sign a statement with the ci key.
func (e *tableEnv) signed(st []byte) {
	e.t.Helper()
	if _, err := e.clientAs("builder:ci").Sign(context.Background(), st); err != nil {
		e.t.Fatalf("sign: %v", err)
	}
}

func (e *tableEnv) sbomStatement(name, digest string) []byte {
	return e.statement(name, digest, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []any{}})
}

// Commits of a build's source: the release tag's commit, a change by
// alice to main.go, then her change to the release workflow (the source
// commit). Each build has commits of its own (the server finds reviews
// by commit).
func commitsOf(b tbuild) (base, feature, head string) {
	h := func(s string) string {
		sum := sha256.Sum256([]byte(b.commitSeed + s))
		return hex.EncodeToString(sum[:20])
	}
	return h("base"), h("feature"), h("head")
}

// review signs, as reviewer (logged), a review of the build's commits
// from the release to its source commit.
func (e *tableEnv) review(reviewer string, b tbuild) {
	e.t.Helper()
	base, feature, head := commitsOf(b)
	alice := attest.GitPerson{Name: "Alice", Email: "alice@example.com"}
	p := attest.ReviewPredicate{Repo: "git+https://" + b.repo, Reviewers: []string{reviewer + "@example.com"}, ReviewedAt: time.Now().UTC(),
		Range: attest.ReviewRange{Spec: "v1.0.0..HEAD", Base: base, BaseRef: "refs/tags/v1.0.0", Head: head},
		Commits: []attest.ReviewCommit{
			{Commit: feature, Parents: []string{base}, Author: alice, Committer: alice, Files: []string{"main.go"}},
			{Commit: head, Parents: []string{feature}, Author: alice, Committer: alice, Files: []string{".github/workflows/release.yml"}},
		}}
	st, err := attest.NewStatement([]attest.Subject{{Name: b.repo, Digest: map[string]string{"gitCommit": head}}}, attest.PredicateReview, p)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := st.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.pushLogged("builder:ci", reviewer, raw)
}

// scan has the server sign a vulnerability scan with the findings (ID ->
// severity name).
func (e *tableEnv) scan(name, digest string, findings map[string]string) {
	var res []attest.VulnsResult
	for _, id := range sortedKeysOf(findings) {
		res = append(res, attest.VulnsResult{ID: id, Severity: []attest.VulnsScore{{Method: "severity", Score: attest.ScoreValue(findings[id])}}})
	}
	if res == nil {
		res = []attest.VulnsResult{}
	}
	e.signed(e.statement(name, digest, attest.PredicateVulnsV01, attest.VulnsPredicate{
		Scanner:  attest.VulnsScanner{URI: "https://osv.dev", DB: attest.VulnsDB{LastUpdate: time.Now().UTC().Format(time.RFC3339)}, Result: res},
		Metadata: attest.VulnsMetadata{ScanStartedOn: time.Now().UTC(), ScanFinishedOn: time.Now().UTC()}}))
}

// rebuild pushes a rebuild of the build (provenance bundle and build ID)
// signed by key.
func (e *tableEnv) rebuild(key, name, digest, provBundle, buildID string, matched bool) {
	got := digest
	status := attest.RebuildMatch
	if !matched {
		got, status = "sha256:"+strings.Repeat("0", 64), attest.RebuildMismatch
	}
	now := time.Now().UTC()
	e.pushLogged("builder:ci", key, e.statement(name, digest, attest.PredicateRebuild, attest.RebuildPredicate{
		Original: attest.RebuildOriginal{BuildID: buildID, BuilderID: "https://custody.dev/builders/local",
			Bundle: map[string]string{"sha256": provBundle}, SourceURI: "git+https://github.com/acme/app", SourceCommit: strings.Repeat("ab", 20),
			Command: []string{"make"}, WorkingDir: "."},
		Rebuilder: attest.Rebuilder{ID: key, KeyID: e.ids[key]}, Matched: matched,
		Subjects: []attest.RebuildSubject{{Name: name, Status: status, Expected: map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")},
			Got: map[string]string{"sha256": strings.TrimPrefix(got, "sha256:")}}},
		Hermetic: true, StartedOn: now.Add(-time.Minute), FinishedOn: now}))
}

// approve signs an approval of the artifact for env with key, logged
// and timestamped through the server, and pushes it with an approver
// token: what 'custody approve --key KEY --server' does.
func (e *tableEnv) approve(name, env, digest string) {
	e.t.Helper()
	st, err := attest.NewApproval(attest.ApprovalPredicate{Environment: env, Artifact: digest, Approver: name, Time: time.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.pushLogged("approver", approverKey(name), b)
}

// pushLogged signs st with key, logged and timestamped through the
// server, and pushes it with the token of as.
func (e *tableEnv) pushLogged(as, key string, st []byte) {
	e.t.Helper()
	cl := e.clientAs(as)
	b, err := signer.SignStatement(context.Background(), e.signers[key], st,
		signer.WithTransparencyLog(cl.Transparency()), signer.WithTimestampAuthority(cl.TimestampAuthority()))
	if err != nil {
		e.t.Fatalf("sign, log and timestamp: %v", err)
	}
	if _, _, err := cl.Push(context.Background(), b); err != nil {
		e.t.Fatalf("push: %v", err)
	}
}

// serverDecision is what the server decides: policy check's decision and
// rejected bundles, and whether deploy went ahead or was quarantined.
type serverDecision struct {
	result      policyResult
	deployed    bool
	quarantined string
}

var incidentRe = regexp.MustCompile(`quarantined by incident (INC-[0-9A-Za-z-]+)`)

func (e *tableEnv) serverDecides(r tableRow, path, digest string) serverDecision {
	e.t.Helper()
	env, extra := r.env, e.auditKeyFlag(r)
	args := append([]string{"policy", "check", "--server", e.url, "--env", env, "--trust-root", e.path("root.json"),
		"--json", "--digest", digest}, extra...)
	code, out, errs := e.run("deployer", args...)
	if code != 0 && code != 1 {
		e.t.Fatalf("policy check: exit %d\n%s%s", code, out, errs)
	}
	var sd serverDecision
	if err := json.Unmarshal([]byte(out), &sd.result); err != nil {
		e.t.Fatalf("policy check --json: %v\n%s", err, out)
	}
	if code == 0 != sd.result.Decision.Allowed {
		e.t.Fatalf("policy check exit %d for allowed=%v", code, sd.result.Decision.Allowed)
	}
	code, out, errs = e.run("deployer", append(append([]string{"deploy", "--env", env, "--server", e.url, "--trust-root", e.path("root.json")},
		extra...), path, "--", "true")...)
	switch {
	case code == 0:
		sd.deployed = true
	case code == 1:
		if m := incidentRe.FindStringSubmatch(errs); m != nil {
			sd.quarantined = m[1]
		}
	default:
		e.t.Fatalf("deploy: exit %d\n%s%s", code, out, errs)
	}
	return sd
}

// makePack makes the pack of the artifact for env, signed by the packer
// key or (serverSigned) by the server's audit key: 'custody pack
// --server' (with --key packer.key), or for a packer-key pack of a row
// that is not decided by the CLI, what that command does (packer.FromServer,
// pack.Build) without opening the encrypted key each time.
func (e *tableEnv) makePack(env, digest string, serverSigned, cli bool) string {
	e.t.Helper()
	out := e.path(fmt.Sprintf("p%d.custody", e.next()))
	if !serverSigned && !cli {
		ctx, now := context.Background(), time.Now()
		c, err := packer.FromServer(ctx, e.clientAs("deployer"), digest, env, now)
		if err != nil {
			e.t.Fatalf("gather the pack: %v", err)
		}
		c.Expires = now.Add(pack.DefaultValidity)
		b, err := pack.Build(ctx, c, func(ctx context.Context, st []byte) ([]byte, error) {
			return signer.SignStatement(ctx, e.signers["packer"], st)
		})
		if err != nil {
			e.t.Fatal(err)
		}
		e.write(filepath.Base(out), b)
		return out
	}
	args := []string{"pack", "--digest", digest, "--server", e.url, "--env", env, "--out", out}
	if !serverSigned {
		args = append(args, "--key", e.path("packer.key"))
	}
	code, o, errs := e.run("deployer", args...)
	if code != 0 {
		e.t.Fatalf("custody pack: exit %d\n%s%s", code, o, errs)
	}
	return out
}

// deviceDecides decides the pack offline as a device: pack.Device under
// the device's trust root (version 1), with the audit key as extra trust
// (the red flags signer), a state of its own.
func (e *tableEnv) deviceDecides(r tableRow, packPath, digest string) (*pack.Result, error) {
	d := &pack.Device{PackPath: packPath, TrustRootPath: e.path("device-root.json"),
		StatePath: filepath.Join(e.t.TempDir(), "edge.json"),
		Options:   pack.Options{Artifact: digest, Environment: r.env}}
	if !r.noAuditKey {
		extra, err := gate.KeyMaterial(e.pubs["audit"])
		if err != nil {
			e.t.Fatal(err)
		}
		d.Extra = extra
	}
	return d.Verify(context.Background())
}

// auditKeyFlag is --key audit.pub, unless the row decides without it.
func (e *tableEnv) auditKeyFlag(r tableRow) []string {
	if r.noAuditKey {
		return nil
	}
	return []string{"--key", e.path("audit.pub")}
}

// ago stands for the durations in messages that depend on when a decision
// was made ("build finished 1m2s ago").
var agoRe = regexp.MustCompile(`[0-9][0-9hmsµn.]* ago`)

func normal(s string) string { return agoRe.ReplaceAllString(s, "… ago") }

// comparable is what must be equal between the server's decision and the
// pack's.
type comparable struct {
	Allowed      bool
	Environment  string
	PolicyDigest string
	Artifact     string
	Failures     []policy.Failure
	Passed       []string
	Inputs       []string
	Cleared      []policy.Clearance
	Rejected     []string
	// RedFlags are the red flags statements shown apart, but for how
	// each names its bundle (server:ID, bundle/NNNN).
	RedFlags []pack.RedFlagsSeen
}

func comparableOf(d *policy.Decision, rejected []string, redFlags []pack.RedFlagsSeen) comparable {
	c := comparable{Allowed: d.Allowed, Environment: d.Environment, PolicyDigest: d.PolicyDigest, Artifact: d.Artifact,
		Inputs: d.Inputs, Cleared: d.Cleared}
	for _, f := range d.Failures {
		c.Failures = append(c.Failures, policy.Failure{Requirement: f.Requirement, Message: normal(f.Message), Fix: normal(f.Fix)})
	}
	for _, p := range d.Passed {
		c.Passed = append(c.Passed, normal(p))
	}
	c.Rejected = append([]string{}, rejected...)
	sort.Strings(c.Rejected)
	for _, r := range redFlags {
		r.Bundle = ""
		c.RedFlags = append(c.RedFlags, r)
	}
	return c
}

func failedRequirements(d *policy.Decision) []string {
	var out []string
	for _, f := range d.Failures {
		out = append(out, f.Requirement)
	}
	return out
}

// tableRow is one deploy scenario.
type tableRow struct {
	name string
	env  string
	// setup makes the artifact's evidence and returns its path and digest.
	setup func(e *tableEnv) (path, digest string)
	// allowed, deny (the failing requirements, in order) and
	// quarantined are what the server must decide.
	allowed     bool
	deny        []string
	quarantined bool
	// cli: also decide with 'custody verify --pack' and the lean binary.
	cli bool
	// noAuditKey: decide without the server's audit key (--key
	// audit.pub), which signs the red flags statements.
	noAuditKey bool
}

func TestPackDecidesAsServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	e := newTableEnv(t)
	e.pushPolicy("prod", prodPolicy)
	e.pushPolicy("rfmissing", rfMissingPolicy)
	e.pushPolicy("rego", regoPolicy)
	e.pushPolicy("reviewed", reviewedPolicy)
	// The evidence of the rows that change nothing else is made at once
	// (each signature waits for its log entry); the decisions one by one.
	rows := tableRows()
	made := make([][2]string, len(rows))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for i, r := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done() // also when a helper's Fatalf ends this goroutine
			slots <- struct{}{}
			defer func() { <-slots }()
			made[i][0], made[i][1] = r.setup(e)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) { e.check(t, r, made[i][0], made[i][1]) })
	}
	for _, r := range e.statefulRows() {
		t.Run(r.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = e.parent }()
			path, digest := r.setup(e)
			e.check(t, r, path, digest)
		})
	}
}

// check decides the row's artifact (at path, of digest) on the server and
// with its packs.
func (e *tableEnv) check(t *testing.T, r tableRow, path, digest string) {
	e.t = t
	defer func() { e.t = e.parent }()
	e.srv.WaitRedFlags()
	sd := e.serverDecides(r, path, digest)
	d := sd.result.Decision
	var srvRejected []string
	for _, rj := range sd.result.Rejected {
		srvRejected = append(srvRejected, rj.Reason)
	}
	// The scenario is what it says.
	if d.Allowed != r.allowed || !slices.Equal(failedRequirements(d), r.deny) {
		t.Errorf("server: allowed %v, failures %q; want allowed %v, failures %q\n%s\n%q", d.Allowed, failedRequirements(d), r.allowed, r.deny, describe(d), d.Passed)
	}
	if (sd.quarantined != "") != r.quarantined || sd.deployed != (r.allowed && !r.quarantined) {
		t.Errorf("server: deployed %v, quarantined %q; want quarantined %v", sd.deployed, sd.quarantined, r.quarantined)
	}
	want := comparableOf(d, srvRejected, sd.result.RedFlags)
	for _, serverSigned := range []bool{false, true} {
		how := "packer key"
		if serverSigned {
			how = "audit key"
		}
		p := e.makePack(r.env, digest, serverSigned, r.cli)
		res, err := e.deviceDecides(r, p, digest)
		if err != nil {
			t.Errorf("pack (%s): the device refused it: %v", how, err)
			continue
		}
		var rej []string
		for _, rj := range res.Rejected {
			rej = append(rej, rj.Reason)
		}
		if got := comparableOf(res.Decision, rej, res.RedFlags); !equalJSON(got, want) {
			t.Errorf("pack (%s) decides otherwise than the server:\n pack:   %s\n server: %s", how, js(got), js(want))
		}
		if res.Quarantined != sd.quarantined || res.Allowed != sd.deployed {
			t.Errorf("pack (%s): allowed %v quarantined %q; the server deployed %v quarantined %q", how, res.Allowed, res.Quarantined, sd.deployed, sd.quarantined)
		}
		if r.cli && !serverSigned {
			e.checkCLI(t, r, p, digest, want, sd)
		}
	}
}

// checkCLI decides the pack with 'custody verify --pack --json' and with
// the lean verifier.
func (e *tableEnv) checkCLI(t *testing.T, r tableRow, p, digest string, want comparable, sd serverDecision) {
	args := []string{"verify", "--pack", p, "--env", r.env, "--trust-root", e.path("device-root.json"),
		"--state", filepath.Join(t.TempDir(), "s.json"), "--json", "--digest", digest}
	args = append(args, e.auditKeyFlag(r)...)
	code, out, errs := e.run("", args...)
	e.compareCLI(t, "custody verify --pack", code, out, errs, want, sd)
	e.compareText(t, r, p, digest)
	bin, err := e.leanBinary()
	if err != nil {
		t.Fatalf("couldn't build the lean verifier: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"--pack", p, "--env", r.env, "--trust-root", e.path("device-root.json"),
		"--state", filepath.Join(t.TempDir(), "s.json"), "--json", "--digest", digest}, e.auditKeyFlag(r)...)...)
	var o, eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &eb
	cmd.Env = append(os.Environ(), "CUSTODY_TOKEN=")
	err = cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if r.env == "rego" {
		if code != 2 || !strings.Contains(eb.String(), "custody verify --pack") {
			t.Errorf("lean verifier on a Rego policy: exit %d; want 2, naming the full binary\n%s", code, eb.String())
		}
		return
	}
	e.compareCLI(t, "custody-verify --pack", code, o.String(), eb.String(), want, sd)
}

// decisionLine is a line of what policy check and verify --pack print
// about the decision; bundleName a bundle's name in it.
var (
	decisionLine = regexp.MustCompile(`^(ALLOWED|DENIED|  FAIL|        |  PASS|  CLEARED|  RED FLAGS)`)
	bundleName   = regexp.MustCompile(`(server:[0-9]+|bundle/[0-9]{4})`)
)

// compareText holds the text of custody verify --pack to that of custody
// policy check: the verdict, each failure with its fix, what passed, what
// was cleared and the red flags shown apart (bundle names aside).
func (e *tableEnv) compareText(t *testing.T, r tableRow, p, digest string) {
	lines := func(out string) []string {
		var keep []string
		for _, l := range strings.Split(out, "\n") {
			if decisionLine.MatchString(l) {
				keep = append(keep, bundleName.ReplaceAllString(normal(l), "BUNDLE"))
			}
		}
		return keep
	}
	_, srv, _ := e.run("deployer", append([]string{"policy", "check", "--server", e.url, "--env", r.env, "--trust-root", e.path("root.json"),
		"--digest", digest}, e.auditKeyFlag(r)...)...)
	_, dev, _ := e.run("", append([]string{"verify", "--pack", p, "--env", r.env, "--trust-root", e.path("device-root.json"),
		"--state", filepath.Join(t.TempDir(), "s.json"), "--digest", digest}, e.auditKeyFlag(r)...)...)
	if s, d := lines(srv), lines(dev); !slices.Equal(s, d) {
		t.Errorf("custody verify --pack prints otherwise than custody policy check:\n pack:\n%s\n server:\n%s", strings.Join(d, "\n"), strings.Join(s, "\n"))
	}
}

func (e *tableEnv) compareCLI(t *testing.T, what string, code int, out, errs string, want comparable, sd serverDecision) {
	wantCode := 1
	if sd.deployed {
		wantCode = 0
	}
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d\n%s%s", what, code, wantCode, out, errs)
		return
	}
	var res pack.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Errorf("%s --json: %v\n%s", what, err, out)
		return
	}
	var rej []string
	for _, rj := range res.Rejected {
		rej = append(rej, rj.Reason)
	}
	if got := comparableOf(res.Decision, rej, res.RedFlags); !equalJSON(got, want) || res.Quarantined != sd.quarantined {
		t.Errorf("%s decides otherwise than the server:\n pack:   %s %s\n server: %s %s", what, js(got), res.Quarantined, js(want), sd.quarantined)
	}
}

// leanBinary builds cmd/custody-verify as docs/edge.md builds it, once.
func (e *tableEnv) leanBinary() (string, error) {
	e.once.Do(func() {
		e.lean = filepath.Join(e.dir, "custody-verify")
		cmd := exec.Command("go", "build", "-tags", "custody_norego,grpcnotrace,nethttpomithttp2", "-trimpath", "-o", e.lean, "./cmd/custody-verify")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			e.leanErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	return e.lean, e.leanErr
}

func equalJSON(a, b any) bool { return js(a) == js(b) }

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func describe(d *policy.Decision) string {
	var b strings.Builder
	for _, f := range d.Failures {
		fmt.Fprintf(&b, "  FAIL %s: %s\n", f.Requirement, f.Message)
	}
	return b.String()
}

func sortedKeysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
