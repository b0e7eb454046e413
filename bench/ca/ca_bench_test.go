package cabench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/ca/catest"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
)

// clients is how many requests are in flight at once in both benchmarks.
const clients = 16

type bench struct {
	url     string
	dir     string
	issuer  *catest.Issuer
	builder string // a builder token
}

func start(b *testing.B) *bench {
	b.Helper()
	is, err := catest.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(is.Close)
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	dir := b.TempDir()
	s, err := server.Open(context.Background(), server.Config{Dir: dir, PublicURL: url, Index: new(store.Memory),
		CA: &server.CAConfig{Issuers: []ca.Issuer{{URL: is.URL(), Kind: ca.KindGitHubActions, Repositories: []string{"octo-org/*"}}}}})
	if err != nil {
		hs.Close()
		b.Fatal(err)
	}
	hs.Config.Handler = s.Handler()
	hs.Start()
	b.Cleanup(func() { hs.Close(); s.Close() })
	tok, err := tokenfile.CreateToken(dir, api.RoleBuilder, "", "bench")
	if err != nil {
		b.Fatal(err)
	}
	return &bench{url: url, dir: dir, issuer: is, builder: tok}
}

// certRequest is a cosign-shaped Fulcio v2 request for a fresh key.
func (bn *bench) certRequest(b *testing.B, tok, sub string) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256([]byte(sub))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"credentials": map[string]string{"oidcIdentityToken": tok},
		"publicKeyRequest": map[string]any{"publicKey": map[string]string{"algorithm": "ECDSA",
			"content": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}, "proofOfPossession": sig}})
	return body
}

// run does n operations on clients goroutines and reports ops/s and the
// p50 and p99 latencies.
func run(b *testing.B, op func() error) {
	b.Helper()
	var (
		mu   sync.Mutex
		lats []time.Duration
		next atomic.Int64
		wg   sync.WaitGroup
		errc = make(chan error, clients)
	)
	b.ResetTimer()
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				s := time.Now()
				if err := op(); err != nil {
					errc <- err
					return
				}
				d := time.Since(s)
				mu.Lock()
				lats = append(lats, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	slices.Sort(lats)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkCA: certificates through POST /api/v2/signingCert (a fresh key
// each, the token verified each time), and the baseline: key-signed
// statements logged through POST /api/v2/log/entries, same server.
func BenchmarkCA(b *testing.B) {
	bn := start(b)
	claims := bn.issuer.Claims(catest.Workflow{Repository: "octo-org/app", Workflow: ".github/workflows/release.yml", Ref: "refs/heads/main"})
	b.Run("signingCert", func(b *testing.B) {
		tok, err := bn.issuer.Token(claims)
		if err != nil {
			b.Fatal(err)
		}
		reqs := make([][]byte, b.N)
		for i := range reqs {
			reqs[i] = bn.certRequest(b, tok, claims["sub"].(string))
		}
		var i atomic.Int64
		run(b, func() error {
			body := reqs[i.Add(1)-1]
			resp, err := http.Post(bn.url+"/api/v2/signingCert", "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("signingCert answered %s", resp.Status)
			}
			return nil
		})
	})
	b.Run("logAppend", func(b *testing.B) {
		cl, err := client.New(bn.url, bn.builder, client.WithCheckpointDir(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		var i atomic.Int64
		run(b, func() error {
			n := i.Add(1)
			stmt, err := attest.NewStatement([]attest.Subject{{Name: fmt.Sprintf("app-%d", n),
				Digest: map[string]string{"sha256": fmt.Sprintf("%064x", n)}}}, "https://custody.dev/bench/v1", map[string]int64{"n": n})
			if err != nil {
				return err
			}
			raw, err := stmt.Marshal()
			if err != nil {
				return err
			}
			_, err = signer.SignStatement(context.Background(), key, raw, signer.WithTransparencyLog(cl.Transparency()))
			return err
		})
	})
}
