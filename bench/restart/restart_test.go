// Package restartbench measures how long `custody serve` takes to start
// after a crash left log entries it must index and records it must append
// (server.Open's reconciliation), against a clean restart of the same data
// directory in the same run:
//
//	go test -run x -bench . -benchtime 5x ./bench/restart
//
// Before the timer, BENCH_ENTRIES (default 20000) hashedrekord entries of
// random keys are appended to the log (not indexed: clients' entries), then
// for each N of BENCH_PENDING (default 10,100,1000) N deployments are
// recorded, each an audit entry and a record. The crashed state is that
// data directory with the index as it was before the deployments and the
// journal files of their audit entries as a SIGKILL after their log entry
// leaves them (package crashpoint, step SignLogged): at start the server
// finds the N entries in the log, indexes them and appends the N records.
package restartbench_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/bench/internal/benchdata"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
)

const publicURL = "http://127.0.0.1:1"

func open(dir string) (*server.Server, error) {
	return server.Open(context.Background(), server.Config{Dir: dir, PublicURL: publicURL, MaxInflight: 1 << 16,
		BatchMaxAge: 10 * time.Millisecond})
}

// fillLog appends n client entries to the log in dir.
func fillLog(dir string, n int) error {
	s, err := open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalPKIXPublicKey(k.Public())
			for next.Add(1) <= int64(n) {
				req, err := benchdata.HashedRekord(k, der)
				if err == nil {
					_, err = s.Log().AddEntry(context.Background(), req)
				}
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d log appends failed", n)
	}
	return nil
}

// crashState records n deployments in clean (a copy of base) and makes
// crashed: clean with base's index and the journal files the deployments'
// audit entries had once logged.
func crashState(base, clean, crashed string, n int) error {
	if err := copyDir(base, clean); err != nil {
		return err
	}
	saved := filepath.Join(crashed + ".journal")
	if err := os.MkdirAll(saved, 0o700); err != nil {
		return err
	}
	journal := filepath.Join(clean, "journal")
	var mu sync.Mutex
	crashpoint.Set(func(step string) {
		if step != crashpoint.SignLogged {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		files, _ := filepath.Glob(filepath.Join(journal, "*.json"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && !bytes.Contains(b, []byte("tlogEntries")) {
				os.WriteFile(filepath.Join(saved, filepath.Base(f)), b, 0o600)
			}
		}
	})
	defer crashpoint.Set(nil)
	s, err := open(clean)
	if err != nil {
		return err
	}
	tok, err := tokenfile.CreateToken(clean, api.RoleDeployer, "", "bench deployer")
	if err != nil {
		s.Close()
		return err
	}
	hs := httptest.NewServer(s.Handler())
	dep, err := client.New(hs.URL, tok)
	if err != nil {
		return err
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if _, err := dep.AppendDeployment(context.Background(), benchdata.Deployment(i)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	hs.Close()
	if err := s.Close(); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d deployments failed", n)
	}
	if err := copyDir(clean, crashed); err != nil {
		return err
	}
	olds, _ := filepath.Glob(filepath.Join(crashed, "index.db*"))
	for _, f := range olds {
		os.Remove(f)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(filepath.Join(base, "index.db"+suffix)); err == nil {
			if err := os.WriteFile(filepath.Join(crashed, "index.db"+suffix), b, 0o600); err != nil {
				return err
			}
		}
	}
	if err := copyDir(saved, filepath.Join(crashed, "journal")); err != nil {
		return err
	}
	if got, _ := filepath.Glob(filepath.Join(crashed, "journal", "*.json")); len(got) != n {
		return fmt.Errorf("%d journal files saved for %d deployments", len(got), n)
	}
	return nil
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", from+"/.", to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	return nil
}

// BenchmarkRestart: clean is a restart after a clean stop of the
// directory holding the N deployments; crashed the restart of the crashed
// state. Each iteration opens a fresh copy (copying is not timed).
func BenchmarkRestart(b *testing.B) {
	entries := 20000
	if n, err := strconv.Atoi(os.Getenv("BENCH_ENTRIES")); err == nil && n > 0 {
		entries = n
	}
	pending := []int{10, 100, 1000}
	if v := os.Getenv("BENCH_PENDING"); v != "" {
		pending = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				b.Fatalf("BENCH_PENDING %q", v)
			}
			pending = append(pending, n)
		}
	}
	tmp := b.TempDir()
	base := filepath.Join(tmp, "base")
	if err := fillLog(base, entries); err != nil {
		b.Fatal(err)
	}
	for _, n := range pending {
		clean, crashed := filepath.Join(tmp, fmt.Sprint("clean", n)), filepath.Join(tmp, fmt.Sprint("crashed", n))
		if err := crashState(base, clean, crashed, n); err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct{ name, dir string }{{"clean", clean}, {"crashed", crashed}} {
			b.Run(fmt.Sprintf("log=%d/pending=%d/%s", entries+n, n, c.name), func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					dir := filepath.Join(tmp, fmt.Sprintf("run-%s-%d-%d", c.name, n, i))
					if err := copyDir(c.dir, dir); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					s, err := open(dir)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					got, err := s.Index().Deployments(context.Background(), store.DeploymentQuery{Limit: store.MaxLimit})
					if err == nil && len(got) != n {
						err = fmt.Errorf("%d deployment records after the restart, want %d", len(got), n)
					}
					s.Close()
					os.RemoveAll(dir)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
