// Package indexbench measures what indexing a pushed bundle costs since
// the server verifies it against what it trusts and logs what verified
// (issue 11, items 3 and 8), against plain indexing of the same kind of
// bundle (store.Put of its record, no HTTP, no verification) in the same
// run:
//
//	go test -run x -bench . -benchtime 2s ./bench/index
//
// Sub-benchmarks, each pushing distinct bundles (signed before the timer
// starts) from 32 concurrent clients over HTTP on loopback:
//
//   - put: store.Put of the record a push would index (the baseline);
//   - push/untrusted: a key the server does not trust: verified against
//     everything trusted, fails, stored unverified (what every push cost
//     before, plus the verification);
//   - push/trusted-offline: a key the server trusts, no log entry: verified,
//     timestamped, logged (waits for a checkpoint), verified again, stored.
//
// Results and the machine are in results-push.md.
package indexbench_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
)

func statement(b *testing.B, i int, name string) []byte {
	b.Helper()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", name, i)))
	st, err := attest.NewStatement([]attest.Subject{{Name: name, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		"https://example.com/note/v1", map[string]any{"n": i})
	if err != nil {
		b.Fatal(err)
	}
	out, err := st.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

type fixture struct {
	url   string
	srv   *server.Server
	token string
	ci    crypto.Signer
}

func open(b *testing.B) *fixture {
	b.Helper()
	dir := b.TempDir()
	pw := []byte("bench")
	ciKey, _, err := signer.WriteKeyPair(filepath.Join(dir, "ci"), signer.ECDSAP256, pw, false)
	if err != nil {
		b.Fatal(err)
	}
	s, err := server.Open(context.Background(), server.Config{Dir: filepath.Join(dir, "data"), Password: pw,
		BuilderKeys: map[string]string{"ci": ciKey}, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	b.Cleanup(func() { hs.Close(); s.Close() })
	tok, err := tokenfile.CreateToken(filepath.Join(dir, "data"), api.RoleBuilder, "", "bench")
	if err != nil {
		b.Fatal(err)
	}
	ci, err := signer.Load(ciKey, func() ([]byte, error) { return pw, nil })
	if err != nil {
		b.Fatal(err)
	}
	return &fixture{url: hs.URL, srv: s, token: tok, ci: ci}
}

func (f *fixture) push(body []byte) error {
	req, err := http.NewRequest(http.MethodPost, f.url+"/api/v1/evidence", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("push: %s", resp.Status)
	}
	return nil
}

// run pushes bundles[i] for i < b.N from 32 clients.
func run(b *testing.B, do func(i int) error) {
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := do(int(next.Add(1) - 1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bundles/s")
}

func BenchmarkPush(b *testing.B) {
	sign := func(b *testing.B, key crypto.Signer, name string) [][]byte {
		out := make([][]byte, b.N)
		for i := range out {
			var err error
			if out[i], err = signer.SignStatement(context.Background(), key, statement(b, i, name)); err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	b.Run("put", func(b *testing.B) {
		f := open(b)
		bundles := sign(b, f.ci, "put")
		run(b, func(i int) error {
			sum := sha256.Sum256([]byte(fmt.Sprintf("put-%d", i)))
			_, _, err := f.srv.Index().Put(context.Background(), &store.Evidence{Bundle: bundles[i], PredicateType: "https://example.com/note/v1",
				Subjects: []store.Subject{{Name: "put", Digests: map[string]string{"sha256": hex.EncodeToString(sum[:])}}}, LogIndex: -1})
			return err
		})
	})
	b.Run("push/untrusted", func(b *testing.B) {
		f := open(b)
		stranger, err := signer.Generate(signer.ECDSAP256)
		if err != nil {
			b.Fatal(err)
		}
		bundles := sign(b, stranger, "untrusted")
		run(b, func(i int) error { return f.push(bundles[i]) })
	})
	b.Run("push/trusted-offline", func(b *testing.B) {
		f := open(b)
		bundles := sign(b, f.ci, "offline")
		run(b, func(i int) error { return f.push(bundles[i]) })
	})
}
