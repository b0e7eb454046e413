// Package auditbench measures `custody audit --complete`
// (client.CompleteAuditTrail: the walk of the server's whole log) against
// the plain trail read (client.AuditTrail) of the same server in the same
// run:
//
//	go test -run x -bench . -benchtime 3x ./bench/audit
//
// BENCH_ENTRIES (default 20000) log entries are appended through the
// server's log API (hashedrekord entries of random keys, not indexed),
// and BENCH_AUDIT (default 200) deployments recorded (each an audit entry
// and its index row), before the timer starts.
package auditbench_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/bench/internal/benchdata"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tokenfile"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type fixture struct {
	url    string
	srv    *server.Server
	tokens map[api.Role]string
}

var (
	once  sync.Once
	fx    *fixture
	fxErr error
)

// setup starts one server for every benchmark of the run and fills it.
func setup(b *testing.B) *fixture {
	once.Do(func() { fx, fxErr = fill(envInt("BENCH_ENTRIES", 20000), envInt("BENCH_AUDIT", 200)) })
	if fxErr != nil {
		b.Fatal(fxErr)
	}
	return fx
}

func fill(entries, audits int) (*fixture, error) {
	dir, err := os.MkdirTemp("", "auditbench")
	if err != nil {
		return nil, err
	}
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	srv, err := server.Open(context.Background(), server.Config{Dir: dir, PublicURL: url, MaxInflight: 1 << 16,
		BatchMaxAge: 10 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	f := &fixture{url: url, srv: srv, tokens: map[api.Role]string{}}
	for _, r := range []api.Role{api.RoleBuilder, api.RoleDeployer, api.RoleAuditor} {
		if f.tokens[r], err = tokenfile.CreateToken(dir, r, "", "bench "+string(r)); err != nil {
			return nil, err
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 512}}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalPKIXPublicKey(k.Public())
			for next.Add(1) <= int64(entries-audits) {
				if err := appendEntry(hc, f, k, der); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	var nextDep atomic.Int64
	dep, err := client.New(url, f.tokens[api.RoleDeployer], client.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := nextDep.Add(1)
				if i > int64(audits) {
					return
				}
				if _, err := dep.AppendDeployment(context.Background(), benchdata.Deployment(i)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("%d appends failed", n)
	}
	return f, nil
}

func appendEntry(hc *http.Client, f *fixture, k *ecdsa.PrivateKey, der []byte) error {
	req, err := benchdata.HashedRekord(k, der)
	if err != nil {
		return err
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		return err
	}
	r, _ := http.NewRequest(http.MethodPost, f.url+"/api/v2/log/entries", bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+f.tokens[api.RoleBuilder])
	r.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, buf.String())
	}
	return nil
}

// BenchmarkAudit: a fresh client per iteration, as each `custody audit`
// run is.
func BenchmarkAudit(b *testing.B) {
	f := setup(b)
	key := f.srv.AuditPublicKey()
	newClient := func() *client.Client {
		c, err := client.New(f.url, f.tokens[api.RoleAuditor])
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Run("trail", func(b *testing.B) {
		var n int
		for b.Loop() {
			trail, err := newClient().AuditTrail(context.Background(), client.AuditQuery{}, key)
			if err != nil {
				b.Fatal(err)
			}
			n = len(trail)
		}
		b.ReportMetric(float64(n), "trail-entries")
	})
	b.Run("complete", func(b *testing.B) {
		var walk *client.LogWalk
		var n int
		for b.Loop() {
			trail, w, err := newClient().CompleteAuditTrail(context.Background(), key)
			if err != nil {
				b.Fatal(err)
			}
			walk, n = w, len(trail)
		}
		b.ReportMetric(float64(n), "trail-entries")
		b.ReportMetric(float64(walk.Size), "log-entries")
		b.ReportMetric(float64(len(walk.Audit)), "audit-leaves")
	})
}
