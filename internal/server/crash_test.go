//go:build linux

package server_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/cli"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// The crash tests run `custody serve` and `custody audit` as processes of
// their own: the test binary, re-executed with cliEnv set, is the custody
// CLI. With crashEnv set to STEP or STEP@N, the server kills itself with
// SIGKILL the Nth time (default the first) a write reaches STEP (package
// crashpoint).
const (
	cliEnv   = "CUSTODY_TEST_CLI"
	crashEnv = "CUSTODY_TEST_CRASH_AT"
)

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		if at := os.Getenv(crashEnv); at != "" {
			armCrash(at)
		}
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// armCrash installs the hook that kills the process at step[@n].
func armCrash(at string) {
	step, nth := at, int64(1)
	if s, n, ok := strings.Cut(at, "@"); ok {
		step = s
		nth, _ = strconv.ParseInt(n, 10, 64)
	}
	var hits atomic.Int64
	crashpoint.Set(func(s string) {
		if s == step && hits.Add(1) == nth {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the kernel ends the process
		}
	})
}

// crashRig is one data directory served by a `custody serve` process that
// the test kills and restarts, with what it acknowledged.
type crashRig struct {
	t        *testing.T
	dir      string // data directory
	addr     string // listen address, the same for every process
	url      string
	cliHome  string // XDG_CONFIG_HOME of `custody audit` (its checkpoint)
	logPath  string // the server processes' stderr
	rootFile string // trust root version 1
	admins   []*ecdsa.PrivateKey
	tokens   map[api.Role]string
	auditPub crypto.PublicKey

	extra   []string // more serve flags (replicas_test.go)
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exited
	started bool          // the first process started (with --trust-root)

	mu    sync.Mutex
	n     int // writes begun, for unique names
	acked acked
}

// acked is what the server acknowledged (answered 2xx).
type acked struct {
	builds    []string // build IDs signed
	digests   []string // sha256 hex of artifacts of decisions and pushed bundles
	policy    int      // highest policy version acknowledged
	trust     int      // highest trust root version acknowledged
	artifacts []string // "sha256:HEX" of deployment records
	incidents []string // incident IDs (four records each)
}

func newCrashRig(t *testing.T) *crashRig {
	t.Helper()
	tmp := t.TempDir()
	r := &crashRig{t: t, dir: filepath.Join(tmp, "data"), cliHome: filepath.Join(tmp, "home"),
		logPath: filepath.Join(tmp, "serve.log"), rootFile: filepath.Join(tmp, "root.json"), tokens: map[api.Role]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	ln.Close()
	r.url = "http://" + r.addr
	var raw []byte
	_, raw, r.admins = governedRoot(t)
	if err := os.WriteFile(r.rootFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, role := range api.Roles() {
		if r.tokens[role], err = tokenfile.CreateToken(r.dir, role, "", "crash "+string(role)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if r.cmd != nil {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("server log (tail):\n%s", b)
		}
	})
	return r
}

// start starts `custody serve`, armed to crash at crashAt ("" for never),
// and waits until it serves.
func (r *crashRig) start(crashAt string) {
	r.t.Helper()
	r.launch(crashAt, true)
}

// launch starts `custody serve`; with wait, it waits until it serves.
func (r *crashRig) launch(crashAt string, wait bool) {
	r.t.Helper()
	args := []string{"serve", "--data", r.dir, "--listen", r.addr, "--batch-max-age", "5ms"}
	args = append(args, r.extra...)
	if !r.started {
		args = append(args, "--trust-root", r.rootFile)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== serve (crash at %q)\n", crashAt)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1", crashEnv+"="+crashAt)
	cmd.Stderr = logf
	// No server outlives a test binary that dies (a timeout's panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		first <- line
		io.Copy(io.Discard, br)
		cmd.Wait()
		close(r.done)
	}()
	if !wait {
		return
	}
	var line string
	select {
	case line = <-first:
	case <-time.After(2 * time.Minute):
	}
	if !strings.Contains(line, "custody serving on") {
		cmd.Process.Kill()
		<-r.done
		r.cmd = nil
		r.t.Fatalf("custody serve did not start (%s): %q", cmd.ProcessState, line)
	}
	r.started = true
	r.fetchAuditKey()
}

// fetchAuditKey asks the server for its audit key, once.
func (r *crashRig) fetchAuditKey() {
	r.t.Helper()
	if r.auditPub != nil {
		return
	}
	pemBytes, err := r.client(api.RoleAuditor).PublicKey(context.Background(), api.AuditKeyName)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.auditPub, err = signer.ParsePublicKey(pemBytes); err != nil {
		r.t.Fatal(err)
	}
}

// waitKilled waits for the server to die and reports whether SIGKILL
// ended it (a crash point was reached); a server still running after the
// write is stopped.
func (r *crashRig) waitKilled(wait time.Duration) bool {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(wait):
		r.stop()
		return false
	}
	ws, _ := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	r.cmd = nil
	return ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// kill sends SIGKILL and waits for the process to end.
func (r *crashRig) kill() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

// stop ends the server as an operator would (SIGTERM).
func (r *crashRig) stop() {
	r.cmd.Process.Signal(syscall.SIGTERM)
	<-r.done
	r.cmd = nil
}

func (r *crashRig) client(role api.Role) *client.Client {
	c, err := client.New(r.url, r.tokens[role], client.WithCheckpointDir(filepath.Join(r.cliHome, "client-"+string(role))))
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// waitRedFlags waits until every verified provenance record has its red
// flags statement (the server signs them after the build, and again at
// start for builds a crash left without).
func (r *crashRig) waitRedFlags(ctx context.Context) {
	r.t.Helper()
	c := r.client(api.RoleAuditor)
	count := func(pt string) int {
		got, err := c.SearchAll(ctx, api.Query{PredicateType: pt})
		if err != nil {
			r.t.Fatalf("search %s: %v", pt, err)
		}
		n := 0
		for _, e := range got {
			if e.Verified {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		builds, flags := count(attest.PredicateSLSAv1), count(attest.PredicateRedFlags)
		if flags >= builds {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d builds, %d red flags statements after 30 s", builds, flags)
		}
	}
}

// writeKinds are the writes a crash may interrupt.
var writeKinds = []string{"sign", "decide", "push", "policy", "trust", "deployment", "incident"}

// write makes one write of kind and records it when acknowledged. It
// returns the write's error (the crashed server's, when it crashed).
func (r *crashRig) write(ctx context.Context, kind string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r.mu.Lock()
	r.n++
	n := r.n
	r.mu.Unlock()
	name := fmt.Sprintf("crash-%s-%d", kind, n)
	sum := sha256.Sum256([]byte(name))
	hexSum := hex.EncodeToString(sum[:])
	subject := []attest.Subject{{Name: name, Digest: map[string]string{"sha256": hexSum}}}
	ack := func(f func(a *acked)) {
		r.mu.Lock()
		f(&r.acked)
		r.mu.Unlock()
	}
	switch kind {
	case "sign":
		if _, err := r.client(api.RoleBuilder).Sign(ctx, durableStatement(name, name)); err != nil {
			return err
		}
		ack(func(a *acked) { a.builds = append(a.builds, name) })
	case "decide", "push":
		// A decision the deployer has signed; a test result signed
		// offline with the server's builder key and pushed (it verifies,
		// so the server logs it).
		pt := "https://slsa.dev/verification_summary/v1"
		if kind == "push" {
			pt = "https://in-toto.io/attestation/test-result/v0.1"
		}
		st, err := attest.NewStatement(subject, pt, map[string]any{"result": "PASSED"})
		if err != nil {
			return err
		}
		b, err := st.Marshal()
		if err != nil {
			return err
		}
		if kind == "decide" {
			_, err = r.client(api.RoleDeployer).Sign(ctx, b)
		} else {
			err = r.pushOffline(ctx, b)
		}
		if err != nil {
			return err
		}
		ack(func(a *acked) { a.digests = append(a.digests, hexSum) })
	case "policy":
		return r.pushPolicy(ctx)
	case "trust":
		return r.pushTrustRoot(ctx)
	case "deployment":
		d := &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: "sha256:" + hexSum, Name: name,
			Actor: "ci", Time: time.Now()}
		if _, err := r.client(api.RoleDeployer).AppendDeployment(ctx, d); err != nil {
			return err
		}
		ack(func(a *acked) { a.artifacts = append(a.artifacts, d.Artifact) })
	case "incident":
		inc := fmt.Sprintf("INC-20260101T000000Z-%08x", n)
		now := time.Now()
		other := sha256.Sum256([]byte(name + "/2"))
		recs := []*store.IncidentRecord{
			{Incident: inc, Event: store.IncidentOpened, Actor: "alice", Time: now, Detail: "key leaked"},
			{Incident: inc, Event: store.IncidentQuarantined, Artifact: "sha256:" + hexSum, Actor: "alice", Time: now, Detail: "built with it"},
			{Incident: inc, Event: store.IncidentQuarantined, Artifact: "sha256:" + hex.EncodeToString(other[:]), Actor: "alice", Time: now},
			{Incident: inc, Event: store.IncidentReported, Actor: "alice", Time: now, Report: json.RawMessage(`{"incident":"` + inc + `","n":` + strconv.Itoa(n) + `}`)},
		}
		if _, err := r.client(api.RoleAdmin).AppendIncidents(ctx, recs); err != nil {
			return err
		}
		ack(func(a *acked) { a.incidents = append(a.incidents, inc) })
	default:
		return fmt.Errorf("no write kind %q", kind)
	}
	return nil
}

// pushOffline pushes a statement signed offline with the server's builder
// key.
func (r *crashRig) pushOffline(ctx context.Context, stmt []byte) error {
	pemBytes, err := os.ReadFile(filepath.Join(r.dir, "keys", "builder.key"))
	if err != nil {
		return err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return errors.New("builder.key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return err
	}
	b, err := signer.SignStatement(ctx, key.(crypto.Signer), stmt)
	if err != nil {
		return err
	}
	_, _, err = r.client(api.RoleBuilder).Push(ctx, b)
	return err
}

// pushPolicy pushes the version after the one the server serves.
func (r *crashRig) pushPolicy(ctx context.Context) error {
	admin := r.client(api.RoleAdmin)
	v := 1
	cur, err := admin.Policy(ctx, "prod")
	var apiErr *client.APIError
	switch {
	case err == nil:
		v = cur.Policy().Version + 1
	case !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound:
		return err
	}
	sp, err := policy.NewSigned([]byte(strings.Replace(prodPolicy, "%VERSION%", strconv.Itoa(v), 1)))
	if err != nil {
		return err
	}
	for _, k := range r.admins[:2] {
		if err := sp.Sign(ctx, k); err != nil {
			return err
		}
	}
	if _, err := admin.PushPolicy(ctx, sp, "alice"); err != nil {
		return err
	}
	r.mu.Lock()
	r.acked.policy = max(r.acked.policy, v)
	r.mu.Unlock()
	return nil
}

// pushTrustRoot pushes the version after the one the server serves, with
// the same admins.
func (r *crashRig) pushTrustRoot(ctx context.Context) error {
	admin := r.client(api.RoleAdmin)
	cur, err := admin.TrustRootDocument(ctx, 0)
	if err != nil {
		return err
	}
	next := *cur
	if err := next.SetExpires(cur.Expires.Add(time.Second)); err != nil {
		return err
	}
	for _, k := range r.admins[:2] {
		if err := next.Sign(ctx, k); err != nil {
			return err
		}
	}
	if _, _, err := admin.PushTrustRoot(ctx, &next, "alice"); err != nil {
		return err
	}
	r.mu.Lock()
	r.acked.trust = max(r.acked.trust, next.Version)
	r.mu.Unlock()
	return nil
}

// durableStatement is a provenance statement of build ID id for artifact.
func durableStatement(id, artifact string) []byte {
	sum := sha256.Sum256([]byte(artifact))
	st, err := attest.NewStatement([]attest.Subject{{Name: artifact, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateSLSAv1, attest.ProvenanceV1{
			BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
				ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}}},
			RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/test@v1"},
				Metadata: &attest.BuildMetadata{InvocationID: id}},
		})
	if err != nil {
		panic(err)
	}
	b, err := st.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// loggedState is the state the audit entries of the log record, or the
// state the server serves, in the same terms.
type loggedState struct {
	policyVersion int
	policyDigest  string
	trustVersion  int
	trustPayload  string
	deployments   map[string]int // record (without ID and recordedAt) → count
	incidents     map[string]int // record (report as its SHA-256) → count
}

// recordedState reads the state the audit trail records.
func recordedState(trail []*client.AuditEntry) (*loggedState, error) {
	st := &loggedState{deployments: map[string]int{}, incidents: map[string]int{}}
	for _, e := range trail {
		if !e.Verified {
			return nil, fmt.Errorf("audit entry %d (%s) failed verification: %s", e.EvidenceID, e.Action, e.Problem)
		}
		switch {
		case e.Action == "policy.changed":
			var c api.PolicyChange
			if err := json.Unmarshal(e.Detail, &c); err != nil {
				return nil, err
			}
			if c.Version > st.policyVersion {
				st.policyVersion, st.policyDigest = c.Version, c.Digest
			}
		case e.Action == "trust.changed":
			var c api.TrustChange
			if err := json.Unmarshal(e.Detail, &c); err != nil {
				return nil, err
			}
			d, err := trust.ParseDocument(c.Document)
			if err != nil {
				return nil, err
			}
			if d.Version > st.trustVersion {
				p, _ := d.Payload()
				st.trustVersion, st.trustPayload = d.Version, string(p)
			}
		case strings.HasPrefix(e.Action, "deployment."):
			var d store.Deployment
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				return nil, err
			}
			st.deployments[server.DeploymentKey(&d)]++
		case e.Action == "incident."+store.IncidentQuarantined:
			var groups []struct {
				Incident, Event, Actor, Detail, RecordedBy string
				Time                                       time.Time
				Artifacts                                  []string
			}
			if err := json.Unmarshal(e.Detail, &groups); err != nil {
				return nil, err
			}
			for _, g := range groups {
				for _, a := range g.Artifacts {
					rec := store.IncidentRecord{Incident: g.Incident, Event: g.Event, Artifact: a, Actor: g.Actor, Time: g.Time,
						Detail: g.Detail, RecordedBy: g.RecordedBy}
					st.incidents[server.IncidentKey(&rec, "")]++
				}
			}
		case strings.HasPrefix(e.Action, "incident."):
			var recs []struct {
				store.IncidentRecord
				Report       json.RawMessage `json:"report,omitempty"`
				ReportSHA256 string          `json:"reportSha256,omitempty"`
			}
			if err := json.Unmarshal(e.Detail, &recs); err != nil {
				return nil, err
			}
			for _, rec := range recs {
				st.incidents[server.IncidentKey(&rec.IncidentRecord, rec.ReportSHA256)]++
			}
		}
	}
	return st, nil
}

// servedState reads the state the server serves.
func (r *crashRig) servedState(ctx context.Context) (*loggedState, error) {
	c := r.client(api.RoleAuditor)
	st := &loggedState{deployments: map[string]int{}, incidents: map[string]int{}}
	sp, err := c.Policy(ctx, "prod")
	var apiErr *client.APIError
	switch {
	case err == nil:
		st.policyVersion, st.policyDigest = sp.Policy().Version, sp.Digest()
	case !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound:
		return nil, err
	}
	d, err := c.TrustRootDocument(ctx, 0)
	if err != nil {
		return nil, err
	}
	p, _ := d.Payload()
	st.trustVersion, st.trustPayload = d.Version, string(p)
	deps, err := c.Deployments(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		st.deployments[server.DeploymentKey(d)]++
	}
	recs, err := c.Incidents(ctx, store.IncidentQuery{})
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		st.incidents[server.IncidentKey(rec, "")]++
	}
	return st, nil
}

// check asserts what a restarted server must hold: `custody audit
// --complete` passes; the policy, trust root, deployment and incident
// records it serves are exactly those its log's audit entries record;
// every entry of its log is indexed; and every write it acknowledged is
// there.
func (r *crashRig) check(ctx context.Context, after string) {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "audit", "--complete", "--server", r.url)
	cmd.Env = append(os.Environ(), cliEnv+"=1", "CUSTODY_TOKEN="+r.tokens[api.RoleAuditor], "XDG_CONFIG_HOME="+r.cliHome)
	if out, err := cmd.CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Errorf("after %s: custody audit --complete: %v: %s", after, err, strings.Join(lines[max(0, len(lines)-3):], " | "))
	}
	trail, walk, err := r.client(api.RoleAuditor).CompleteAuditTrail(ctx, r.auditPub)
	if err != nil {
		t.Fatalf("after %s: complete audit trail: %v", after, err)
	}
	logged, err := recordedState(trail)
	if err != nil {
		t.Fatalf("after %s: %v", after, err)
	}
	served, err := r.servedState(ctx)
	if err != nil {
		t.Fatalf("after %s: %v", after, err)
	}
	if served.policyVersion != logged.policyVersion || served.policyDigest != logged.policyDigest {
		t.Errorf("after %s: served policy version %d (%s); the log records version %d (%s)", after,
			served.policyVersion, served.policyDigest, logged.policyVersion, logged.policyDigest)
	}
	if served.trustVersion != logged.trustVersion || served.trustPayload != logged.trustPayload {
		t.Errorf("after %s: served trust root version %d; the log records version %d", after, served.trustVersion, logged.trustVersion)
	}
	diffCounts(t, after, "deployment records", served.deployments, logged.deployments)
	diffCounts(t, after, "incident records", served.incidents, logged.incidents)
	r.checkIndexed(ctx, after, walk.Size)
	r.checkAcked(ctx, after, served)
}

func diffCounts(t *testing.T, after, what string, served, logged map[string]int) {
	t.Helper()
	for k, n := range logged {
		if served[k] != n {
			t.Errorf("after %s: %s: the log records %d of %s, the server serves %d", after, what, n, k, served[k])
		}
	}
	for k, n := range served {
		if _, ok := logged[k]; !ok {
			t.Errorf("after %s: %s: the server serves %d of %s, which the log does not record", after, what, n, k)
		}
	}
}

// checkIndexed asserts that the index holds every entry of the log's
// first size entries (this test appends nothing the server does not
// index) and no other. A restarted server may still append (the red flags
// of builds whose statement a kill cut off are written after it starts):
// index entries past size must be red flags statements the log holds
// after the search.
func (r *crashRig) checkIndexed(ctx context.Context, after string, size uint64) {
	t := r.t
	t.Helper()
	c := r.client(api.RoleAuditor)
	seen := map[int64]bool{}
	laterType := map[int64]string{}
	q := api.Query{Limit: api.MaxLimit}
	for {
		page, err := c.Search(ctx, q)
		if err != nil {
			t.Fatalf("after %s: search: %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.LogIndex >= 0 {
				if seen[e.LogIndex] {
					t.Errorf("after %s: log entry %d indexed twice", after, e.LogIndex)
				}
				seen[e.LogIndex] = true
				if e.LogIndex >= int64(size) {
					laterType[e.LogIndex] = e.PredicateType
				}
			}
		}
		q.AfterID = page[len(page)-1].ID
	}
	var missing []int64
	for i := int64(0); i < int64(size); i++ {
		if !seen[i] {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		t.Errorf("after %s: log entries %v (of %d) are not indexed", after, missing, size)
	}
	var later []int64
	for i, typ := range laterType {
		if typ != attest.PredicateRedFlags {
			t.Errorf("after %s: log entry %d (%s) is indexed, the log held %d when walked", after, i, typ, size)
		}
		later = append(later, i)
	}
	if len(later) == 0 {
		return
	}
	newest := slices.Max(later)
	lc, err := c.Log(ctx)
	if err != nil {
		t.Fatalf("after %s: log: %v", after, err)
	}
	// The entry is indexed once sequenced; the checkpoint that covers it
	// is published within the checkpoint interval.
	var logSize uint64
	for range 100 {
		cp, err := lc.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("after %s: checkpoint: %v", after, err)
		}
		if logSize = cp.Size; int64(logSize) > newest {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("after %s: index entry names log entry %d, the log holds %d", after, newest, logSize)
}

// checkAcked asserts that every acknowledged write is served.
func (r *crashRig) checkAcked(ctx context.Context, after string, served *loggedState) {
	t := r.t
	t.Helper()
	r.mu.Lock()
	a := r.acked
	r.mu.Unlock()
	c := r.client(api.RoleAuditor)
	for _, id := range a.builds {
		if got, err := c.Search(ctx, api.Query{BuildID: id}); err != nil || len(got) != 1 {
			t.Errorf("after %s: acknowledged build %s: %d records, %v", after, id, len(got), err)
		}
	}
	for _, d := range a.digests {
		if got, err := c.Search(ctx, api.Query{Digest: "sha256:" + d}); err != nil || len(got) != 1 {
			t.Errorf("after %s: acknowledged bundle about sha256:%s: %d records, %v", after, d, len(got), err)
		}
	}
	if served.policyVersion < a.policy {
		t.Errorf("after %s: policy version %d acknowledged, version %d served", after, a.policy, served.policyVersion)
	}
	if served.trustVersion < a.trust {
		t.Errorf("after %s: trust root version %d acknowledged, version %d served", after, a.trust, served.trustVersion)
	}
	var deps []string
	for k := range served.deployments {
		var d store.Deployment
		json.Unmarshal([]byte(k), &d)
		deps = append(deps, d.Artifact)
	}
	for _, art := range a.artifacts {
		if !slices.Contains(deps, art) {
			t.Errorf("after %s: acknowledged deployment of %s is not served", after, art)
		}
	}
	incs := map[string]int{}
	for k, n := range served.incidents {
		var rec store.IncidentRecord
		json.Unmarshal([]byte(strings.SplitN(k, "\x00", 2)[0]), &rec)
		incs[rec.Incident] += n
	}
	for _, inc := range a.incidents {
		if incs[inc] != 4 {
			t.Errorf("after %s: acknowledged incident %s: %d records served, want 4", after, inc, incs[inc])
		}
	}
}

// crashSteps are the crash points each kind of write reaches.
func crashSteps(kind string) []string {
	sign := []string{crashpoint.SignJournaled, crashpoint.LogSequenced, crashpoint.SignLogged, crashpoint.SignFinal, crashpoint.SignIndexed}
	switch kind {
	case "push":
		return append(sign, crashpoint.PushIndexed)
	case "policy":
		return append(sign, crashpoint.PolicyAudited, crashpoint.PolicyEnvelope)
	case "trust":
		return append(sign, crashpoint.TrustAudited)
	case "deployment":
		return append(sign, crashpoint.DeploymentAudited, crashpoint.RecordAppended)
	case "incident":
		// An incident write appends three audit entries at once; the
		// second reaching a step crashes while the others are under way.
		return append(sign, crashpoint.SignLogged+"@2", crashpoint.IncidentAudited, crashpoint.RecordAppended)
	}
	return sign
}

// TestCrashAtEveryStep kills `custody serve` (SIGKILL) at every step of
// every kind of write, one after the other in one data directory, and
// after each restart checks that the server serves exactly what its log
// records, that `custody audit --complete` passes, and that nothing it
// acknowledged is lost.
func TestCrashAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts servers")
	}
	ctx := context.Background()
	r := newCrashRig(t)
	r.start("")
	// Something of every kind first, so that crashes meet existing state.
	for _, kind := range writeKinds {
		if err := r.write(ctx, kind); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	r.stop()
	settle := true // provenance was written: its red flags may be pending
	for _, kind := range writeKinds {
		for _, step := range crashSteps(kind) {
			what := kind + " killed at " + step
			if settle {
				// The red flags the restart signs for a build the last
				// run left without them would reach the step first.
				r.start("")
				r.waitRedFlags(ctx)
				r.stop()
			}
			settle = kind == "sign" || kind == "push"
			r.start(step)
			r.check(ctx, "the restart before "+what)
			if t.Failed() {
				return
			}
			err := r.write(ctx, kind)
			if !r.waitKilled(10 * time.Second) {
				t.Errorf("%s: the write did not reach the step (write: %v)", what, err)
			}
		}
	}
	r.start("")
	r.check(ctx, "the last crash")
	// The server goes on: a write of every kind succeeds.
	for _, kind := range writeKinds {
		if err := r.write(ctx, kind); err != nil {
			t.Errorf("%s after the crashes: %v", kind, err)
		}
	}
	r.check(ctx, "writes after the crashes")
	r.stop()
	checkFirstSeen(t, filepath.Join(r.dir, "index.db"))
}

// checkFirstSeen checks the first seen table of a stopped server's SQLite
// index against searches of its records: for every verified provenance,
// its builder, key and identity were first seen at or before it, by the
// record a search finds first. Every write path (signing, push, the
// journal replayed at start) keeps the table, crash or not.
func checkFirstSeen(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	idx, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	checked := 0
	q := store.Query{Limit: store.MaxLimit}
	for {
		page, err := idx.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.PredicateType != attest.PredicateSLSAv1 || !server.Attributed(e) {
				continue
			}
			for _, sub := range e.Subjects {
				for _, fq := range []store.FirstSeenQuery{
					{SubjectName: sub.Name, Kind: store.FirstSeenBuilder, Value: e.BuilderID},
					{SubjectName: sub.Name, Kind: store.FirstSeenKey, Value: e.SignerKeyID},
					{SubjectName: sub.Name, Kind: store.FirstSeenIdentity, Value: e.SignerIdentity, Issuer: e.SignerIssuer},
				} {
					if fq.Value == "" {
						continue
					}
					got, err := idx.FirstSeen(ctx, fq)
					if err != nil {
						t.Fatal(err)
					}
					if want := storetest.FirstSeenBySearch(t, idx, fq); got != want || got == 0 || got > e.ID {
						t.Errorf("record %d: FirstSeen(%+v) = %d, want %d (by search)", e.ID, fq, got, want)
					}
					checked++
				}
			}
		}
		if len(page) < q.Limit {
			break
		}
		q.AfterID = page[len(page)-1].ID
	}
	if checked == 0 {
		t.Error("no verified provenance to check first seen with")
	}
}

// TestKillLoop runs writes of every kind from three clients against a real
// `custody serve` and kills it with SIGKILL after a different delay each
// round (and every other round once more while it starts and reconciles),
// then checks the restarted server as TestCrashAtEveryStep does.
func TestKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts servers")
	}
	ctx := context.Background()
	r := newCrashRig(t)
	delays := []time.Duration{0, 15, 45, 90, 140, 200, 270, 350, 440, 540, 650, 770}
	for round, d := range delays {
		r.start("")
		if round > 0 {
			r.check(ctx, fmt.Sprintf("round %d (killed after %s)", round-1, delays[round-1]*time.Millisecond))
			if t.Failed() {
				return
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; wctx.Err() == nil; i++ {
					r.write(wctx, writeKinds[i%len(writeKinds)])
				}
			}()
		}
		time.Sleep(d * time.Millisecond)
		r.kill()
		cancel()
		wg.Wait()
		if round%2 == 1 {
			// Killed again while it replays the journal.
			r.launch("", false)
			time.Sleep(time.Duration(round*10) * time.Millisecond)
			r.kill()
		}
	}
	r.start("")
	r.check(ctx, "the last round")
	r.mu.Lock()
	t.Logf("acknowledged: %d signed, %d decisions and pushes, policy v%d, trust root v%d, %d deployments, %d incidents",
		len(r.acked.builds), len(r.acked.digests), r.acked.policy, r.acked.trust, len(r.acked.artifacts), len(r.acked.incidents))
	r.mu.Unlock()
	r.stop()
	checkFirstSeen(t, filepath.Join(r.dir, "index.db"))
}
