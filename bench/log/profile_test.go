// In-process harness for profiling the append path of custody serve:
//
//	go test -run XXX -bench ServeAppend -benchtime 20000x -cpuprofile /tmp/cpu.out ./bench/log
//	go tool pprof -top -cum bench/log/log.test /tmp/cpu.out
//
// BENCH_CLIENTS sets the concurrent clients (default 1024). Sub-benchmarks
// vary the log's CheckpointInterval and BatchMaxAge (`custody serve
// --checkpoint-interval`, `--batch-max-age`) and the layer measured: the whole
// server handler (auth, in-flight cap, tlog HTTP), or tlog.Log.AddEntry alone.
package logbench_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/internal/tokenfile"
)

func clients() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 1024
}

type signer struct {
	k   *ecdsa.PrivateKey
	der []byte
}

func newSigner(b *testing.B) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		b.Fatal(err)
	}
	return signer{k, der}
}

func (s signer) req(b *testing.B) *tlog.CreateEntryRequest {
	var art [32]byte
	rand.Read(art[:])
	d := sha256.Sum256(art[:])
	sig, err := ecdsa.SignASN1(rand.Reader, s.k, d[:])
	if err != nil {
		b.Fatal(err)
	}
	return &tlog.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest: d[:],
			Signature: &rekorpb.Signature{Content: sig, Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: s.der}},
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			}},
		}}}
}

// drive runs b.N appends spread over clients goroutines and reports
// appends/s and latency percentiles.
func drive(b *testing.B, n int, add func(signer) error) {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	var wg sync.WaitGroup
	signers := make([]signer, n)
	for i := range signers {
		signers[i] = newSigner(b)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := add(signers[i]); err != nil {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "appends/s")
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	}
	b.ReportMetric(float64(failed.Load()), "failed")
}

var tunings = []struct {
	name       string
	checkpoint time.Duration
	batchAge   time.Duration
}{
	{"defaults", 0, 0}, // tlog's: 100ms checkpoints, 50ms batches
	{"cp100ms-batch10ms", 100 * time.Millisecond, 10 * time.Millisecond},
	{"cp250ms-batch50ms", 250 * time.Millisecond, 50 * time.Millisecond},
	{"cp500ms-batch100ms", 500 * time.Millisecond, 100 * time.Millisecond},
}

// BenchmarkServeAppend: POST /api/v2/log/entries through the whole server
// handler over loopback HTTP, as custody serve runs it.
func BenchmarkServeAppend(b *testing.B) {
	for _, tc := range tunings {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			tok, err := tokenfile.CreateToken(dir, api.RoleBuilder, "", "bench")
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewUnstartedServer(nil)
			url := "http://" + hs.Listener.Addr().String()
			srv, err := server.Open(context.Background(), server.Config{Dir: dir, PublicURL: url,
				MaxInflight: 1 << 16, CheckpointInterval: tc.checkpoint, BatchMaxAge: tc.batchAge})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			hs.Config.Handler = srv.Handler()
			hs.Start()
			defer hs.Close()
			n := clients()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * n, MaxIdleConns: 2 * n}}
			drive(b, n, func(s signer) error {
				body, err := protojson.Marshal(s.req(b))
				if err != nil {
					return err
				}
				r, _ := http.NewRequest(http.MethodPost, url+"/api/v2/log/entries", bytes.NewReader(body))
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(r)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				if resp.StatusCode != http.StatusCreated {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
		})
	}
}

// BenchmarkAddEntry: tlog.Log.AddEntry alone (no HTTP, no JSON, no auth).
func BenchmarkAddEntry(b *testing.B) {
	for _, tc := range tunings {
		b.Run(tc.name, func(b *testing.B) {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			l, err := tlog.Open(context.Background(), tlog.Options{Dir: b.TempDir(), Origin: "bench.local", Signer: k,
				CheckpointInterval: tc.checkpoint, BatchMaxAge: tc.batchAge})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			drive(b, clients(), func(s signer) error {
				_, err := l.AddEntry(context.Background(), s.req(b))
				return err
			})
		})
	}
}
