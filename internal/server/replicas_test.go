//go:build linux

package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/internal/tlog/mysqltest"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// replicaRig is n `custody serve` processes (crashRigs, each with a data
// directory holding only its copy of the shared key files) serving one
// registry: the log in MariaDB (--log mysql://), the index and every other
// piece of state in PostgreSQL (--db).
type replicaRig struct {
	t      *testing.T
	rigs   []*crashRig
	state  state.Store
	logPub *ecdsa.PublicKey
}

func newReplicaRig(t *testing.T, n int) *replicaRig {
	t.Helper()
	mysqlURL := mysqltest.NewDatabase(t)
	dsn := storetest.PostgresSchema(t)
	ctx := context.Background()
	pg, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	st, err := pg.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The keys every replica is given, as secrets would deliver them.
	keys := map[string][]byte{}
	rr := &replicaRig{t: t, state: st}
	for _, name := range []string{"log", "tsa", "audit", "builder"} {
		k := newKey(t)
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if name == "log" {
			rr.logPub = &k.PublicKey
		}
	}
	tokens := map[api.Role]string{}
	for _, role := range api.Roles() {
		if tokens[role], _, err = tokenfile.NewTokenIn(ctx, st, tokenfile.TokenSpec{Role: role, Name: "replicas " + string(role)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		r := newCrashRig(t)
		// newCrashRig made tokens in the directory; these replicas read PostgreSQL.
		os.Remove(filepath.Join(r.dir, tokenfile.File))
		os.Remove(filepath.Join(r.dir, "tokens.lock"))
		if err := os.MkdirAll(filepath.Join(r.dir, "keys"), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, b := range keys {
			if err := os.WriteFile(filepath.Join(r.dir, "keys", name+".key"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		r.tokens = tokens
		r.n = i * 1_000_000 // write names (and so digests) unique across replicas
		if i > 0 {
			r.rootFile, r.admins = rr.rigs[0].rootFile, rr.rigs[0].admins
		}
		r.extra = []string{"--db", dsn, "--log", mysqlURL}
		rr.rigs = append(rr.rigs, r)
	}
	return rr
}

// waitServing waits until r answers /healthz (launched without waiting).
func (r *crashRig) waitServing() {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			r.t.Fatalf("custody serve exited (%s) before serving", r.cmd.ProcessState)
		default:
		}
		if resp, err := http.Get(r.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.started = true
				r.fetchAuditKey()
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("custody serve did not start serving within 2 minutes")
}

// startAll starts every replica at once (they race through their
// start-up reconciliation) and waits until all serve.
func (rr *replicaRig) startAll() {
	for _, r := range rr.rigs {
		r.launch("", false)
	}
	for _, r := range rr.rigs {
		r.waitServing()
	}
}

// check merges what every replica acknowledged and checks, through each
// replica, that it serves exactly what the log records and everything
// acknowledged (crashRig.check: custody audit --complete, records, index).
func (rr *replicaRig) check(ctx context.Context, after string) {
	var all acked
	for _, r := range rr.rigs {
		r.mu.Lock()
		a := r.acked
		r.mu.Unlock()
		all.builds = append(all.builds, a.builds...)
		all.digests = append(all.digests, a.digests...)
		all.artifacts = append(all.artifacts, a.artifacts...)
		all.incidents = append(all.incidents, a.incidents...)
		all.policy, all.trust = max(all.policy, a.policy), max(all.trust, a.trust)
	}
	for i, r := range rr.rigs {
		r.mu.Lock()
		r.acked = all
		r.mu.Unlock()
		r.check(ctx, fmt.Sprintf("%s (through replica %d)", after, i))
	}
}

// noStateOnDisk asserts that a replica's data directory holds nothing but
// the key files it was given.
func (rr *replicaRig) noStateOnDisk() {
	for i, r := range rr.rigs {
		filepath.WalkDir(r.dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			if rel, _ := filepath.Rel(r.dir, p); !strings.HasPrefix(rel, "keys"+string(filepath.Separator)) || !strings.HasSuffix(rel, ".key") {
				rr.t.Errorf("replica %d keeps %s on its disk", i, rel)
			}
			return nil
		})
	}
}

// watchCheckpoints reads the checkpoint of each replica in turn until ctx
// ends, checking that every one extends the one seen before (whichever
// replica served either): a consistency proof, no rollback.
func (rr *replicaRig) watchCheckpoints(ctx context.Context) (seen func() int) {
	var mu sync.Mutex
	n := 0
	var last *tlog.Checkpoint
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			r := rr.rigs[i%len(rr.rigs)]
			c, err := tlog.NewClient(r.url, "127.0.0.1", rr.logPub, nil)
			if err != nil {
				rr.t.Error(err)
				return
			}
			next, err := c.Update(ctx, last)
			switch {
			case errors.Is(err, tlog.ErrRollback) || errors.Is(err, tlog.ErrInconsistent):
				rr.t.Errorf("replica %d: %v", i%len(rr.rigs), err)
				return
			case err == nil:
				mu.Lock()
				last, n = next, n+1
				mu.Unlock()
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestReplicasKillLoop runs three replicas of custody serve on one
// PostgreSQL and one MariaDB, spreads writes of every kind across them,
// and SIGKILLs one replica every couple of seconds and restarts it. Every
// checkpoint any client saw must extend the one before; afterwards every
// replica must serve exactly what the log records and every write any
// replica acknowledged (custody audit --complete verifies each entry's
// inclusion). Then a policy pushed through one replica is served by all,
// and a token revoked through one is refused by all. No replica keeps
// state on its disk.
func TestReplicasKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts servers")
	}
	ctx := context.Background()
	rr := newReplicaRig(t, 3)
	rr.startAll()
	wctx, cancel := context.WithCancel(ctx)
	seen := rr.watchCheckpoints(wctx)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := w; wctx.Err() == nil; i++ {
				// Load spread across the replicas, as a load balancer would.
				rr.rigs[i%3].write(wctx, writeKinds[i%len(writeKinds)])
			}
		})
	}
	for round := range 6 {
		time.Sleep(2 * time.Second)
		victim := rr.rigs[round%3]
		victim.kill()
		victim.start("")
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if seen() == 0 {
		t.Error("no checkpoint was read")
	}
	// Writes whose clients left go on in the servers: stop every replica
	// cleanly (each finishes what it accepted) and start them again
	// together (their start-up reconciliation finishes what the killed
	// ones left), so that what they serve is settled.
	for _, r := range rr.rigs {
		r.stop()
	}
	rr.startAll()
	rr.check(ctx, "the kill loop")
	// What the killed replicas were writing is settled: no claim is left.
	if left, err := rr.state.List(ctx, "claims/"); err != nil || len(left) > 0 {
		t.Errorf("claims left after the kill loop: %v (%v)", left, err)
	}
	rr.rigs[0].mu.Lock()
	a := rr.rigs[0].acked
	rr.rigs[0].mu.Unlock()
	t.Logf("acknowledged: %d signed, %d decisions and pushes, policy v%d, trust root v%d, %d deployments, %d incidents; %d checkpoints read",
		len(a.builds), len(a.digests), a.policy, a.trust, len(a.artifacts), len(a.incidents), seen())
	rr.policySeenByAll(ctx)
	rr.revokedRefusedByAll(ctx)
	rr.sessionSharedByAll()
	for _, r := range rr.rigs {
		r.stop()
	}
	rr.noStateOnDisk()
}

// policySeenByAll pushes a policy through replica 0 and waits until every
// replica serves it.
func (rr *replicaRig) policySeenByAll(ctx context.Context) {
	t := rr.t
	if err := rr.rigs[0].pushPolicy(ctx); err != nil {
		t.Fatalf("policy push: %v", err)
	}
	rr.rigs[0].mu.Lock()
	want := rr.rigs[0].acked.policy
	rr.rigs[0].mu.Unlock()
	for i, r := range rr.rigs {
		eventually(t, fmt.Sprintf("replica %d serves policy version %d", i, want), func() bool {
			sp, err := r.client(api.RoleAuditor).Policy(ctx, "prod")
			return err == nil && sp.Policy().Version == want
		})
	}
}

// revokedRefusedByAll creates a token, uses it on every replica, revokes
// it through replica 1 and waits until every replica refuses it (401).
func (rr *replicaRig) revokedRefusedByAll(ctx context.Context) {
	t := rr.t
	tok, _, err := tokenfile.NewTokenIn(ctx, rr.state, tokenfile.TokenSpec{Role: api.RoleAuditor, Name: "short-lived"})
	if err != nil {
		t.Fatal(err)
	}
	status := func(r *crashRig) int {
		c, err := client.New(r.url, tok)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Deployments(ctx, "")
		var apiErr *client.APIError
		if errors.As(err, &apiErr) {
			return apiErr.Status
		}
		if err != nil {
			return -1
		}
		return http.StatusOK
	}
	for i, r := range rr.rigs {
		eventually(t, fmt.Sprintf("replica %d accepts the new token", i), func() bool { return status(r) == http.StatusOK })
	}
	if _, err := rr.rigs[1].client(api.RoleAdmin).RevokeToken(ctx, "short-lived"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for i, r := range rr.rigs {
		eventually(t, fmt.Sprintf("replica %d refuses the revoked token", i), func() bool { return status(r) == http.StatusUnauthorized })
	}
}

// sessionSharedByAll signs in to the dashboard through replica 0 (with
// the form of replica 1: its CSRF token is MACed with the shared key),
// uses the session through every replica, signs out through replica 2 and
// checks that no replica takes the session any more. (Cookies name a host,
// not a port, so one browser carries its cookies to every replica here, as
// it would to one load balancer.)
func (rr *replicaRig) sessionSharedByAll() {
	t := rr.t
	at := func(i int, b *browser) *browser { return &browser{t: t, base: rr.rigs[i].url, hc: b.hc} }
	b := newBrowser(t, rr.rigs[1].url)
	csrf := b.loginForm()
	code, hdr, _ := at(0, b).do("POST", "/ui/login", url.Values{"token": {rr.rigs[0].tokens[api.RoleAuditor]}, "csrf": {csrf}}, "Origin", rr.rigs[0].url)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/ui/" || b.cookie("custody_session") == "" {
		t.Fatalf("sign in through replica 0 with replica 1's form: %d → %q", code, hdr.Get("Location"))
	}
	sid := b.cookie("custody_session")
	var page string
	for i := range rr.rigs {
		code, _, page = at(i, b).do("GET", "/ui/", nil)
		if code != http.StatusOK {
			t.Fatalf("the session through replica %d: %d, want 200", i, code)
		}
	}
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no sign-out form on the dashboard")
	}
	if code, _, _ := at(2, b).do("POST", "/ui/logout", url.Values{"csrf": {m[1]}}, "Origin", rr.rigs[2].url); code != http.StatusSeeOther {
		t.Fatalf("sign out through replica 2: %d", code)
	}
	for i, r := range rr.rigs {
		replay := newBrowser(t, r.url)
		u, _ := url.Parse(r.url + "/ui/")
		replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "custody_session", Value: sid, Path: "/ui/"}})
		if code, _, _ := replay.do("GET", "/ui/", nil); code != http.StatusSeeOther {
			t.Errorf("replica %d takes a session signed out through replica 2: %d", i, code)
		}
	}
}

// eventually polls cond until it holds; the test fails if it does not
// within half a minute (a bound for a broken build, not a speed claim).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Errorf("%s: not within 30s", what)
}

// TestReplicasRaceToReconcile kills a replica where a crash leaves work
// for reconciliation (a signed entry in the log but not indexed; a
// deployment's audit entry without its record), then starts two replicas
// at the same moment: both reconcile at start, under the lock, and the
// entry is indexed once and the record appended once.
func TestReplicasRaceToReconcile(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts servers")
	}
	ctx := context.Background()
	rr := newReplicaRig(t, 3)
	a, b, c := rr.rigs[0], rr.rigs[1], rr.rigs[2]
	// a dies with a signed entry in the log but not indexed (its journal
	// holds it); b dies with an incident's audit entries logged but not
	// its records (their reports stashed in b's journal).
	rr.startAll() // the first start accepts the trust root (an audited write)
	a.stop()
	b.stop()
	c.stop()
	a.launch(crashpoint.SignLogged, false)
	b.launch(crashpoint.IncidentAudited, false)
	a.waitServing()
	b.waitServing()
	for _, w := range []struct {
		r    *crashRig
		kind string
	}{{a, "sign"}, {b, "incident"}} {
		err := w.r.write(ctx, w.kind)
		if !w.r.waitKilled(30 * time.Second) {
			t.Fatalf("%s did not reach its crash point (write: %v)", w.kind, err)
		}
	}
	a.launch("", false)
	c.launch("", false)
	a.waitServing()
	c.waitServing()
	b.start("")
	rr.check(ctx, "two replicas raced to reconcile")
	rr.oneBuildOnce(ctx)
	for _, r := range rr.rigs {
		r.stop()
	}
	rr.noStateOnDisk()
}

// oneBuildOnce sends the statement of one build to two replicas at the
// same moment: as on one server, one signs it and the other refuses it
// (409: the build ID is being signed, or already recorded), and the index
// holds the build once.
func (rr *replicaRig) oneBuildOnce(ctx context.Context) {
	t := rr.t
	stmt := durableStatement("one-build-two-replicas", "one-build-two-replicas")
	start := make(chan struct{})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, r := range []*crashRig{rr.rigs[0], rr.rigs[2]} {
		wg.Go(func() {
			<-start
			_, errs[i] = r.client(api.RoleBuilder).Sign(ctx, stmt)
		})
	}
	close(start)
	wg.Wait()
	signed := 0
	for i, err := range errs {
		var apiErr *client.APIError
		switch {
		case err == nil:
			signed++
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict:
		default:
			t.Errorf("request %d: %v, want signed or 409", i, err)
		}
	}
	if signed != 1 {
		t.Errorf("one build sent to two replicas at once was signed %d times, want once", signed)
	}
	found, err := rr.rigs[1].client(api.RoleAuditor).Search(ctx, api.Query{BuildID: "one-build-two-replicas"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != signed {
		t.Errorf("the index holds the build %d times, want %d", len(found), signed)
	}
}

// TestCAStaysInTrustedRootOfReplicas: a replica started without the CA
// serves, in its trusted root, the CA another replica ran: the CA's chain
// and CT key are in the shared state, not on the disk of the replica that
// ran it.
func TestCAStaysInTrustedRootOfReplicas(t *testing.T) {
	ctx := context.Background()
	pg, err := store.OpenPostgres(ctx, storetest.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	st, err := pg.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	replicaKeys(t, dirs, "log", "tsa", "audit", "builder", "ca", "ct")
	srv := startCA(t, func(c *server.Config) { c.Dir, c.State = dirs[0], st })
	withCA, err := root.NewTrustedRootFromJSON(srv.TrustedRoot())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	other, err := server.Open(ctx, server.Config{Dir: dirs[1], PublicURL: srv.url, Index: new(store.Memory), State: st})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	checkHasCA(t, "a replica without the CA: its", other.TrustedRoot(), withCA)
}

// cutProxy forwards TCP connections to a database until it is cut: then
// it drops every connection and refuses new ones (a network partition
// between a replica and its database), until it is restored.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	p.mu.Lock()
	if err != nil || p.cut {
		p.mu.Unlock()
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// setCut cuts (true) or restores (false) the way to the database.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// through returns rawURL with its host replaced by the proxy's.
func (p *cutProxy) through(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// TestReplicaReadiness cuts a replica off from PostgreSQL, then from
// MariaDB: each time its readiness probe (GET /readyz) fails, so that a
// load balancer stops sending it requests, and a write through it is not
// acknowledged; once the database is back, it is ready and writes again,
// without a restart.
func TestReplicaReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx := context.Background()
	rr := newReplicaRig(t, 1)
	r := rr.rigs[0]
	proxies := map[string]*cutProxy{}
	for i := 0; i+1 < len(r.extra); i += 2 {
		u, err := url.Parse(r.extra[i+1])
		if err != nil {
			t.Fatal(err)
		}
		p := newCutProxy(t, u.Host)
		proxies[r.extra[i]] = p
		r.extra[i+1] = p.through(t, r.extra[i+1])
	}
	r.start("")
	ready := func() int {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz of a replica whose databases answer: %d, want 200", code)
	}
	for _, flag := range []string{"--db", "--log"} {
		proxies[flag].setCut(true)
		eventually(t, "/readyz fails with the "+flag+" database cut off", func() bool { return ready() == http.StatusServiceUnavailable })
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := r.write(wctx, "sign"); err == nil {
			t.Errorf("a write was acknowledged with the %s database cut off", flag)
		}
		cancel()
		proxies[flag].setCut(false)
		eventually(t, "/readyz answers 200 with the "+flag+" database back", func() bool { return ready() == http.StatusOK })
		if flag == "--db" {
			// The cut ended the session that held the lock replica/ID: the
			// replica takes it again (or another replica would take it for
			// gone and replay its journal while it writes).
			id := r.replicaID()
			eventually(t, "the replica holds its lock again", func() bool {
				release, free, err := rr.state.TryLock(ctx, "replica/"+id)
				if free {
					release()
				}
				return err == nil && !free
			})
		}
		// A pooled connection the cut broke may fail one write more (500,
		// not acknowledged); the replica recovers without a restart.
		eventually(t, "a write with the "+flag+" database back", func() bool { return r.write(ctx, "sign") == nil })
	}
	r.stop()
}

// replicaID reads the ID of the replica r runs from its log (its last
// "replica started" line).
func (r *crashRig) replicaID() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	m := replicaStarted.FindAllStringSubmatch(string(b), -1)
	if m == nil {
		r.t.Fatal("no replica started in the server log")
	}
	return m[len(m)-1][1]
}

var replicaStarted = regexp.MustCompile(`msg="replica started" replica=(\S+)`)

// replicaKeys delivers the same new key of each name to the data
// directories of replicas (DIR/keys/NAME.key), as replicas need.
func replicaKeys(t *testing.T, dirs []string, names ...string) {
	t.Helper()
	for _, name := range names {
		der, err := x509.MarshalPKCS8PrivateKey(newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(d, "keys"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "keys", name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}
