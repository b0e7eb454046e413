// Command loadgen drives a Rekor v2 compatible log (custody serve or
// rekor-tiles) at saturation: N concurrent clients, each with its own ECDSA
// P-256 key, send hashedrekord v0.0.2 CreateEntryRequests for a fixed
// duration. Only 2xx answers that carry an inclusion proof (which verifies
// against the checkpoint's root hash) count as appends. It prints one JSON
// object: appends/s, request latency percentiles of acknowledged appends
// (= time to inclusion, since the answer carries the proof), a latency
// histogram and errors by status. With several -url (comma-separated:
// replicas), client i starts on URL i mod n and moves to the next one
// when a request fails in transport, as a load balancer would; the
// failover gap of a client is the time from its first failed request to
// its next acknowledged append.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"
)

type result struct {
	Label    string  `json:"label,omitempty"`
	URL      string  `json:"url"`
	Clients  int     `json:"clients"`
	Warmup   float64 `json:"warmup_s"`
	Duration float64 `json:"duration_s"`

	Appends     int            `json:"appends"`
	AppendsPerS float64        `json:"appends_per_s"`
	Requests    int            `json:"requests"`
	P50ms       float64        `json:"p50_ms"`
	P90ms       float64        `json:"p90_ms"`
	P99ms       float64        `json:"p99_ms"`
	Maxms       float64        `json:"max_ms"`
	E2EP50ms    float64        `json:"e2e_p50_ms"`
	E2EP99ms    float64        `json:"e2e_p99_ms"`
	Histogram   map[string]int `json:"histogram_ms"`
	Errors      map[string]int `json:"errors"`
	MaxTreeSize int64          `json:"max_tree_size"`
	// Gaps are the failover gaps (ms) clients saw: from a failed request
	// to the next acknowledged append.
	Gaps     int     `json:"gaps,omitempty"`
	GapP50ms float64 `json:"gap_p50_ms,omitempty"`
	GapMaxms float64 `json:"gap_max_ms,omitempty"`
}

type sample struct {
	done    time.Time
	latency time.Duration // the acknowledged request alone
	e2e     time.Duration // from the first attempt of this entry, including 503 retries
}

type client struct {
	key    *ecdsa.PrivateKey
	der    []byte
	http   *http.Client
	urls   []string
	at     int // index in urls
	token  string
	verify bool
}

func (c *client) request() ([]byte, error) {
	artifact := make([]byte, 32)
	rand.Read(artifact)
	digest := sha256.Sum256(artifact)
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, err
	}
	req := &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest: digest[:],
			Signature: &rekorpb.Signature{Content: sig, Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: c.der}},
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			}},
		}}}
	return protojson.Marshal(req)
}

// outcome of one POST: "" for an acknowledged append with a valid proof,
// otherwise an error class.
func (c *client) post(ctx context.Context, body []byte) (class string, retryAfter time.Duration, treeSize int64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.urls[c.at%len(c.urls)]+"/api/v2/log/entries", bytes.NewReader(body))
	if err != nil {
		return "request", 0, 0
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled", 0, 0
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout", 0, 0
		}
		return "transport", 0, 0
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled", 0, 0
		}
		return "read", 0, 0
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			retryAfter = time.Duration(s) * time.Second
		}
		return strconv.Itoa(resp.StatusCode), retryAfter, 0
	}
	var tle protorekor.TransparencyLogEntry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out, &tle); err != nil {
		return "2xx_bad_json", 0, 0
	}
	ip := tle.GetInclusionProof()
	if ip == nil || ip.GetCheckpoint().GetEnvelope() == "" || ip.TreeSize <= ip.LogIndex {
		return "2xx_no_proof", 0, 0
	}
	if c.verify {
		leaf := rfc6962.DefaultHasher.HashLeaf(tle.CanonicalizedBody)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.LogIndex), uint64(ip.TreeSize), leaf, ip.Hashes, ip.RootHash); err != nil {
			return "2xx_bad_proof", 0, 0
		}
	}
	return "", 0, ip.TreeSize
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	i = max(0, min(i, len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "base URL of the log")
	token := flag.String("token", "", "bearer token (custody: a builder token)")
	clients := flag.Int("clients", 64, "concurrent clients")
	duration := flag.Duration("duration", 20*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 3*time.Second, "load before measuring (not counted)")
	timeout := flag.Duration("timeout", 60*time.Second, "per-request timeout")
	maxBackoff := flag.Duration("max-backoff", time.Second, "a client answered 503/429 waits Retry-After, at most this long")
	verify := flag.Bool("verify", true, "verify each inclusion proof against the returned root hash")
	label := flag.String("label", "", "label copied to the output")
	flag.Parse()

	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        *clients * 2,
		MaxIdleConnsPerHost: *clients * 2,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	hc := &http.Client{Transport: tr, Timeout: *timeout}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	measureTo := measureFrom.Add(*duration)
	ctx, cancel := context.WithDeadline(context.Background(), measureTo)
	defer cancel()

	var (
		mu       sync.Mutex
		gaps     []time.Duration
		samples  []sample
		errs     = map[string]int{}
		requests int
		maxTree  int64
		wg       sync.WaitGroup
	)
	urls := strings.Split(*url, ",")
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			der, err := x509.MarshalPKIXPublicKey(k.Public())
			if err != nil {
				panic(err)
			}
			c := &client{key: k, der: der, http: hc, urls: urls, at: i, token: *token, verify: *verify}
			var local []sample
			var localGaps []time.Duration
			var failedAt time.Time
			localErr := map[string]int{}
			n := 0
			var tree int64
			for ctx.Err() == nil {
				body, err := c.request()
				if err != nil {
					panic(err)
				}
				first := time.Now()
				for ctx.Err() == nil {
					t0 := time.Now()
					class, ra, ts := c.post(ctx, body)
					t1 := time.Now()
					if class == "cancelled" {
						break
					}
					counted := !t1.Before(measureFrom) && !t1.After(measureTo)
					if counted {
						n++
					}
					if class == "" {
						if counted {
							local = append(local, sample{done: t1, latency: t1.Sub(t0), e2e: t1.Sub(first)})
						}
						if !failedAt.IsZero() {
							localGaps = append(localGaps, t1.Sub(failedAt))
							failedAt = time.Time{}
						}
						tree = max(tree, ts)
						break
					}
					if counted {
						localErr[class]++
					}
					if failedAt.IsZero() && class != "503" && class != "429" {
						failedAt = t0
					}
					if class == "503" || class == "429" {
						// Retry the same entry, as a polite client would.
						wait := min(max(ra, 10*time.Millisecond), *maxBackoff)
						select {
						case <-time.After(wait):
						case <-ctx.Done():
						}
						continue
					}
					// Other errors: give up on this entry, make a new one.
					if class == "transport" || class == "timeout" || class == "502" || class == "500" {
						c.at++ // the next replica, as a load balancer would
						time.Sleep(10 * time.Millisecond)
					}
					break
				}
			}
			mu.Lock()
			samples = append(samples, local...)
			gaps = append(gaps, localGaps...)
			for k, v := range localErr {
				errs[k] += v
			}
			requests += n
			maxTree = max(maxTree, tree)
			mu.Unlock()
		}()
	}
	wg.Wait()

	lat := make([]time.Duration, len(samples))
	e2e := make([]time.Duration, len(samples))
	hist := map[string]int{}
	bounds := []float64{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}
	for i, s := range samples {
		lat[i], e2e[i] = s.latency, s.e2e
		ms := float64(s.latency.Microseconds()) / 1000
		b := "inf"
		for _, ub := range bounds {
			if ms <= ub {
				b = "le_" + strconv.FormatFloat(ub, 'f', -1, 64)
				break
			}
		}
		hist[b]++
	}
	slices.Sort(lat)
	slices.Sort(e2e)
	r := result{
		Label: *label, URL: *url, Clients: *clients,
		Warmup: warmup.Seconds(), Duration: duration.Seconds(),
		Appends: len(samples), AppendsPerS: float64(len(samples)) / duration.Seconds(),
		Requests: requests,
		P50ms:    pct(lat, 50), P90ms: pct(lat, 90), P99ms: pct(lat, 99), Maxms: pct(lat, 100),
		E2EP50ms: pct(e2e, 50), E2EP99ms: pct(e2e, 99),
		Histogram: hist, Errors: errs, MaxTreeSize: maxTree,
	}
	if len(gaps) > 0 {
		slices.Sort(gaps)
		r.Gaps, r.GapP50ms, r.GapMaxms = len(gaps), pct(gaps, 50), pct(gaps, 100)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
