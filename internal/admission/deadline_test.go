package admission

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/signer"
)

// manyDigests returns n distinct digests no evidence is about.
func manyDigests(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("sha256:%064x", i+1)
	}
	return out
}

// refs names each digest as an image of repository app.
func refs(digests []string) []string {
	out := make([]string, len(digests))
	for i, d := range digests {
		out[i] = "ghcr.io/org/app@" + d
	}
	return out
}

// postWithin posts body to the webhook and fails the test when no answer
// comes within a generous limit (it checks that the handler returned, not
// how fast).
func (f *fixture) postWithin(body []byte) *http.Response {
	f.t.Helper()
	hc := f.srv.Client()
	hc.Timeout = 2 * time.Minute
	resp, err := hc.Post(f.srv.URL+"/validate", "application/json", strings.NewReader(string(body)))
	if err != nil {
		f.t.Fatalf("the webhook did not answer: %v", err)
	}
	return resp
}

// TestImageCap: a review naming more distinct image digests than the cap
// (20,000, the size of the review that took the webhook 232 s against a 2 s
// timeout) is denied naming the cap, before any evidence is fetched and
// with no decision recorded; a review at the cap is decided, one
// evaluation and one VSA per digest.
func TestImageCap(t *testing.T) {
	vk, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	rec := &signingRecorder{key: vk}
	f := newFixture(t, func(c *Config) { c.Decisions = rec })

	big := review(t, "big", "shop", podKind, pod(refs(manyDigests(20000))...))
	if len(big) < 2<<20 {
		t.Fatalf("review of %d bytes, want the 2.4 MB of the report", len(big))
	}
	resp := f.postWithin(big)
	_, r := f.decode(resp)
	if r.Response.Allowed || r.Response.UID != "big" {
		t.Fatalf("response %+v", r.Response)
	}
	msg := r.Response.Result.Message
	if !strings.Contains(msg, "20000 distinct image digests, more than the 64 custody admission decides in one request (--max-images)") {
		t.Errorf("message %q does not name the cap", msg)
	}
	if n := f.fetches.Load(); n != 0 {
		t.Errorf("%d evidence fetches for a review over the cap, want 0", n)
	}

	// At the cap, with each digest named twice: decided (denied, no
	// evidence), once per distinct digest.
	at := manyDigests(DefaultMaxImages)
	imgs := append(refs(at), refs(at)...)
	_, r = f.post(review(t, "at", "shop", podKind, pod(imgs...)))
	if r.Response.Allowed || strings.Contains(r.Response.Result.Message, "--max-images") ||
		!strings.Contains(r.Response.Result.Message, "no verified SLSA provenance") {
		t.Fatalf("at the cap: %+v", r.Response.Result)
	}
	if n := f.fetches.Load(); n != int64(DefaultMaxImages) {
		t.Errorf("%d evidence fetches at the cap, want %d (one per distinct digest)", n, DefaultMaxImages)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.bundles()); n != DefaultMaxImages {
		t.Errorf("%d VSAs recorded, want %d: none for the review over the cap, one per digest at it", n, DefaultMaxImages)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_decisions_total{reason="too_many_images",result="denied"}`: 1,
		`custody_admission_decisions_total{reason="policy",result="denied"}`:          1,
	})
}

// hangingEvidence is an evidence server that accepts requests and never
// answers them (until the test ends); it counts the requests it holds at
// once.
type hangingEvidence struct {
	srv          *httptest.Server
	release      chan struct{}
	mu           sync.Mutex
	now, max, in int
}

func newHangingEvidence(t *testing.T) *hangingEvidence {
	h := &hangingEvidence{release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.now++
		h.in++
		h.max = max(h.max, h.now)
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.now--; h.mu.Unlock() }()
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(h.release); h.srv.Close() })
	return h
}

func (h *hangingEvidence) counts() (now, max, in int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now, h.max, h.in
}

// TestDeadlineHangingEvidence: with an evidence server that never answers,
// a review of many images is denied at the deadline, every image's line
// naming the timeout; at most Concurrency fetches are ever in progress,
// and none outlives the deadline of the request that started it.
func TestDeadlineHangingEvidence(t *testing.T) {
	h := newHangingEvidence(t)
	cl, err := client.New(h.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) {
		c.Source = ServerSource(cl)
		c.Timeout = 300 * time.Millisecond
		c.Concurrency = 4
	})
	resp := f.postWithin(review(t, "hang", "shop", podKind, pod(refs(manyDigests(40))...)))
	_, r := f.decode(resp)
	if r.Response.Allowed || r.Response.UID != "hang" {
		t.Fatalf("response %+v", r.Response)
	}
	msg := r.Response.Result.Message
	if !strings.Contains(msg, "couldn't decide in environment prod: ") || !strings.Contains(msg, "within the deadline (timeout 300ms)") {
		t.Errorf("message %q does not say the deadline passed", msg)
	}
	if !strings.Contains(msg, "… and ") {
		t.Errorf("message %q: want one line per undecided image, cut at the message limit", msg)
	}
	// The fetches the review started end with its deadline: wait (with a
	// generous limit) until the evidence server holds none.
	for limit := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if now, _, _ := h.counts(); now == 0 && f.waiting() == 0 {
			break
		}
		if time.Now().After(limit) {
			t.Fatal("evidence fetches outlived the request's deadline")
		}
	}
	if _, most, in := h.counts(); most > 4 || in == 0 {
		t.Errorf("%d fetches at once (%d in all), want at most Concurrency 4", most, in)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_decisions_total{reason="undecided",result="denied"}`: 1,
	})
}

// TestDeadlineSourceIgnoresContext: a Source that does not honour its
// context (against its contract) still cannot hold an answer past the
// deadline.
func TestDeadlineSourceIgnoresContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	f := newFixture(t, func(c *Config) {
		c.Timeout = 200 * time.Millisecond
		c.Source = SourceFunc(func(context.Context, string) ([]gate.Bundle, error) {
			<-block
			return nil, nil
		})
	})
	r := f.wh.Review(context.Background(), mustParse(t, review(t, "ign", "shop", podKind, pod(refs(manyDigests(3))...))))
	if r.Allowed || !strings.Contains(r.Result.Message, "within the deadline (timeout 200ms)") {
		t.Fatalf("response %+v", r.Result)
	}
}

func mustParse(t *testing.T, body []byte) *Request {
	t.Helper()
	r, err := ParseReview(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVSAOncePerDecision: one image named by several containers and
// references in one review is one decision and one VSA; the same decision
// computed again (its denial no longer cached) is not recorded again while
// the VSA of the identical decision is recent (AllowTTL); a different
// decision about it is, and so is the same one once that VSA is old.
func TestVSAOncePerDecision(t *testing.T) {
	var mu sync.Mutex
	var got []string // digest per recorded decision
	f := newFixture(t, func(c *Config) {
		c.DenyTTL = 5 * time.Second
		c.AllowTTL = time.Hour
		c.Decisions = RecorderFunc(func(_ context.Context, _, digest string, _ []byte) error {
			mu.Lock()
			got = append(got, digest)
			mu.Unlock()
			return nil
		})
	})
	asked := 0
	// recorded waits (generously) until every decision asked for was
	// written or skipped as a duplicate, then checks how many were written.
	recorded := func(want int) {
		t.Helper()
		for limit := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
			m := f.scrape()
			done := m[`custody_admission_vsa_writes_total{result="ok"}`] + m[`custody_admission_vsa_writes_total{result="duplicate"}`]
			if int(done) >= asked {
				break
			}
			if time.Now().After(limit) {
				t.Fatalf("%v of %d decisions written or skipped", done, asked)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != want {
			t.Fatalf("%d VSAs recorded, want %d", len(got), want)
		}
	}
	ask := func(uid string) bool {
		t.Helper()
		spec := corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "ghcr.io/org/app@" + noSBOM}},
			Containers: []corev1.Container{{Name: "a", Image: "ghcr.io/org/app@" + noSBOM}, {Name: "b", Image: "ghcr.io/org/app:v1@" + noSBOM},
				{Name: "c", Image: "mirror.example/app@" + noSBOM}},
		}
		_, r := f.post(review(t, uid, "shop", deploymentKind, deployment(spec)))
		asked++
		return r.Response.Allowed
	}
	if ask("r1") {
		t.Fatal("allowed without an SBOM")
	}
	recorded(1)
	f.advance(6 * time.Second) // the denial's cache entry ended: decided again, identically
	if ask("r2") {
		t.Fatal("allowed without an SBOM")
	}
	if n := f.fetches.Load(); n != 2 {
		t.Fatalf("%d evaluations, want 2", n)
	}
	recorded(1)
	f.advance(2 * time.Hour) // the first VSA is older than AllowTTL
	ask("r3")
	recorded(2)
	// Another decision (the SBOM arrived): recorded at once.
	f.evidence[noSBOM] = append(f.evidence[noSBOM], f.sign(noSBOM, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX"}))
	f.advance(6 * time.Second)
	if !ask("r4") {
		t.Fatal("denied with an SBOM")
	}
	recorded(3)
}
