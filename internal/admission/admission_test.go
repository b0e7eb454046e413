package admission

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
)

var (
	goodDigest  = "sha256:" + strings.Repeat("a1", 32) // passing evidence
	noSBOM      = "sha256:" + strings.Repeat("b2", 32) // provenance only
	otherDigest = "sha256:" + strings.Repeat("c3", 32) // no evidence at all
)

const policyTmpl = `apiVersion: custody.dev/policy/v1
environment: %s
trustedBuilders: [https://custody.dev/builders/local@v1]
signers: [{keyId: %s}]
maxAge: 24h
%s`

// fixture is a webhook with a builder key, policies "prod" (provenance and
// an SBOM) and "dev" (provenance), and evidence in memory.
type fixture struct {
	t        *testing.T
	key      crypto.Signer
	built    time.Time
	evidence map[string][][]byte
	fetches  atomic.Int64
	now      atomic.Pointer[time.Time]
	wh       *Webhook
	srv      *httptest.Server
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, evidence: map[string][][]byte{}}
	var err error
	if f.key, err = signer.Generate(signer.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	id, err := gate.KeyID(f.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	f.built = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	now := time.Now()
	f.now.Store(&now)
	prod := mustPolicy(t, fmt.Sprintf(policyTmpl, "prod", id, "requiredEvidence: [provenance, sbom]\n"))
	dev := mustPolicy(t, fmt.Sprintf(policyTmpl, "dev", id, ""))
	f.evidence[goodDigest] = [][]byte{f.sign(goodDigest, attest.PredicateSLSAv1, f.provenance()),
		f.sign(goodDigest, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX"})}
	f.evidence[noSBOM] = [][]byte{f.sign(noSBOM, attest.PredicateSLSAv1, f.provenance())}
	tm, err := gate.KeyMaterial(f.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Policies:   map[string]*policy.Policy{"prod": prod, "dev": dev},
		Namespaces: map[string]string{"shop": "prod", "*": "dev"},
		Source: SourceFunc(func(ctx context.Context, dg string) ([]gate.Bundle, error) {
			f.fetches.Add(1)
			var out []gate.Bundle
			for i, b := range f.evidence[dg] {
				out = append(out, gate.Bundle{Name: fmt.Sprintf("mem:%d", i), JSON: b})
			}
			return out, nil
		}),
		Trust: tm,
		Now:   func() time.Time { return *f.now.Load() },
	}
	if mod != nil {
		mod(&cfg)
	}
	if f.wh, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewTLSServer(f.wh.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func mustPolicy(t *testing.T, y string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) provenance() attest.ProvenanceV1 {
	return attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody, ExternalParameters: attest.CustodyExternalParameters{
			Command: []string{"make"}, Source: attest.CustodySource{URI: "git+https://github.com/org/app", Ref: "refs/tags/v1", Commit: strings.Repeat("1", 40)},
		}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/local@v1"},
			Metadata: &attest.BuildMetadata{InvocationID: "b1", StartedOn: &f.built, FinishedOn: &f.built}},
	}
}

func (f *fixture) sign(dg, pt string, pred any) []byte {
	f.t.Helper()
	sub := attest.Subject{Name: "app", Digest: map[string]string{"sha256": strings.TrimPrefix(dg, "sha256:")}}
	st, err := attest.NewStatement([]attest.Subject{sub}, pt, pred)
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := signer.SignStatement(context.Background(), f.key, b)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) advance(d time.Duration) {
	n := f.now.Load().Add(d)
	f.now.Store(&n)
}

// post sends body to /validate over HTTPS and returns the status and the
// decoded response review.
func (f *fixture) post(body []byte) (int, *admissionv1.AdmissionReview) {
	f.t.Helper()
	resp, err := f.srv.Client().Post(f.srv.URL+"/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.decode(resp)
}

// decode reads the answer of the webhook: the status and the response
// review.
func (f *fixture) decode(resp *http.Response) (int, *admissionv1.AdmissionReview) {
	f.t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &r); err != nil {
		f.t.Fatalf("response %s: %v", b, err)
	}
	if r.APIVersion != "admission.k8s.io/v1" || r.Kind != "AdmissionReview" || r.Response == nil {
		f.t.Fatalf("response is not an AdmissionReview v1 response: %s", b)
	}
	return resp.StatusCode, &r
}

// review marshals an AdmissionReview v1 CREATE request for obj.
func review(t *testing.T, uid, namespace string, kind metav1.GroupVersionKind, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID(uid), Kind: kind, Namespace: namespace,
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	podKind        = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	deploymentKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	cronJobKind    = metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}
)

func pod(images ...string) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	for i, im := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: im})
	}
	return p
}

func deployment(spec corev1.PodSpec) *appsv1.Deployment {
	return &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: spec}}}
}

func TestValidate(t *testing.T) {
	f := newFixture(t, nil)
	good := "ghcr.io/org/app@" + goodDigest
	tests := []struct {
		name      string
		body      []byte
		allowed   bool
		uid       string
		wantLines []string // substrings of the message, in order
	}{
		{"pod by tag", review(t, "u1", "shop", podKind, pod("nginx:1.27")), false, "u1",
			[]string{`container c0 image "nginx:1.27": it is not referenced by digest`}},
		{"pod with no tag", review(t, "u2", "shop", podKind, pod("nginx")), false, "u2",
			[]string{`image "nginx": it is not referenced by digest`}},
		{"pod by digest with passing evidence", review(t, "u3", "shop", podKind, pod(good)), true, "u3", nil},
		{"tag and digest", review(t, "u4", "shop", podKind, pod("ghcr.io/org/app:v1@"+goodDigest)), true, "u4", nil},
		{"failing evidence: no SBOM in prod", review(t, "u5", "shop", podKind, pod("ghcr.io/org/app@"+noSBOM)), false, "u5",
			[]string{"container c0 image ghcr.io/org/app@sha256:b2b2b2b2b2b2…: denied in prod: evidence:sbom:"}},
		{"same digest passes dev", review(t, "u6", "elsewhere", podKind, pod("ghcr.io/org/app@"+noSBOM)), true, "u6", nil},
		{"no evidence", review(t, "u7", "shop", podKind, pod("ghcr.io/org/other@"+otherDigest)), false, "u7",
			[]string{"denied in prod: provenance: no verified SLSA provenance"}},
		{"deployment: init container by tag, container passes", review(t, "u8", "shop", deploymentKind, deployment(corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:latest"}},
			Containers:     []corev1.Container{{Name: "app", Image: good}},
		})), false, "u8", []string{`init container setup image "busybox:latest": it is not referenced by digest`}},
		{"deployment: every image reported", review(t, "u9", "shop", deploymentKind, deployment(corev1.PodSpec{
			Containers: []corev1.Container{{Name: "a", Image: "x:1"}, {Name: "b", Image: "r/y@" + noSBOM}, {Name: "c", Image: good}},
		})), false, "u9", []string{`container a image "x:1"`, "container b image r/y@sha256:b2b2"}},
		{"cronjob with ephemeral-free template passes", review(t, "u10", "shop", cronJobKind, &batchv1.CronJob{
			Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "job", Image: good}}}}}}}}), true, "u10", nil},
		{"sha512 digest", review(t, "u11", "shop", podKind, pod("app@sha512:"+strings.Repeat("a", 128))), false, "u11",
			[]string{`digest algorithm "sha512"`}},
		{"unsupported kind", review(t, "u12", "shop", metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, map[string]any{}), false, "u12",
			[]string{"kind v1/ConfigMap is not one custody admission checks"}},
		{"wrong review kind", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"Review","request":{"uid":"u13"}}`), false, "u13",
			[]string{`kind "Review"`}},
		{"review v1beta1", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u14"}}`), false, "u14",
			[]string{"want admission.k8s.io/v1"}},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), false, "", []string{"no request"}},
		{"no uid", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`), false, "",
			[]string{"no uid"}},
		{"object not a pod", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u15","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{"containers":"nope"}}}}`),
			false, "u15", []string{"object:"}},
		{"create without object", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u16","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"}}}`),
			false, "u16", []string{"no object"}},
		{"delete is allowed", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u17","operation":"DELETE","kind":{"group":"","version":"v1","kind":"Pod"}}}`),
			true, "u17", nil},
		{"unknown operation", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u18","operation":"PATCH","kind":{"group":"","version":"v1","kind":"Pod"}}}`),
			false, "u18", []string{`operation "PATCH"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, r := f.post(tc.body)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			resp := r.Response
			if string(resp.UID) != tc.uid {
				t.Errorf("uid %q, want %q echoed", resp.UID, tc.uid)
			}
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed %v, want %v; result %+v", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.allowed {
				return
			}
			if resp.Result == nil || resp.Result.Code != http.StatusForbidden {
				t.Fatalf("denial without a 403 status: %+v", resp.Result)
			}
			msg := resp.Result.Message
			rest := msg
			for _, want := range tc.wantLines {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("message does not contain %q (in order):\n%s", want, msg)
				}
				rest = rest[i+len(want):]
			}
			for _, l := range strings.Split(msg, "\n") {
				if len(l) > MaxLineBytes {
					t.Errorf("line of %d bytes", len(l))
				}
			}
		})
	}
}

func TestNotJSON(t *testing.T) {
	f := newFixture(t, nil)
	for _, body := range []string{"", "not json", `{"apiVersion":`, "\x00\x01"} {
		if code, _ := f.post([]byte(body)); code != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", body, code)
		}
	}
	resp, err := f.srv.Client().Get(f.srv.URL + "/validate")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /validate: %d", resp.StatusCode)
	}
	resp, err = f.srv.Client().Get(f.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d", resp.StatusCode)
	}
}

// TestFixtures posts hand-written AdmissionReview JSON (as an API server
// sends it) from testdata.
func TestFixtures(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		file    string
		allowed bool
		uid     string
		want    string
	}{
		{"pod-tag.json", false, "705ab4f5-6393-11e8-b7cc-42010a800002", `container nginx image "nginx:1.27": it is not referenced by digest`},
		{"deployment-digest.json", true, "4b54a1c6-5b6e-4c3a-9c2e-8d3f0d6f2b11", ""},
		{"pod-ephemeral.json", false, "0d9c1b6e-2f0a-4b4e-9a57-3c4b2a1e7f00", `ephemeral container debugger image "busybox:1.36"`},
		{"pod-duplicate-image.json", false, "8f0e2c7a-1d3b-4e5f-a6b7-c8d9e0f1a2b3", "duplicate field"},
		{"pod-unknown-image-field.json", false, "3c2b1a09-8f7e-4d6c-b5a4-9e8d7c6b5a43", "spec.sidecars[0].image that custody does not know"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.ReplaceAll(b, []byte("GOOD_DIGEST"), []byte(goodDigest))
			code, r := f.post(b)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if string(r.Response.UID) != tc.uid || r.Response.Allowed != tc.allowed {
				t.Fatalf("uid %q allowed %v, want %q %v; %+v", r.Response.UID, r.Response.Allowed, tc.uid, tc.allowed, r.Response.Result)
			}
			if !tc.allowed && !strings.Contains(r.Response.Result.Message, tc.want) {
				t.Errorf("message %q does not contain %q", r.Response.Result.Message, tc.want)
			}
		})
	}
}

// TestHangingServer: an evidence server that accepts the connection and
// never answers. The webhook denies, saying why, within its timeout; the
// client's own generous limit only catches a webhook that hangs too.
func TestHangingServer(t *testing.T) {
	release := make(chan struct{})
	var hung atomic.Int64
	exited := make(chan struct{}, 2)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		defer func() { exited <- struct{}{} }()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	cl, err := client.New(hang.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) {
		c.Source = ServerSource(cl)
		c.Timeout = 300 * time.Millisecond
	})
	hc := f.srv.Client()
	hc.Timeout = 30 * time.Second
	body := review(t, "hang", "shop", podKind, pod("ghcr.io/org/app@"+goodDigest))
	for i := range 2 { // the failure is not cached: the second request asks again
		if i == 1 {
			// The first fetch gives up at its own deadline, a moment after
			// the webhook answered; until then a second request would share
			// it. Ask again once it has given up.
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatal("the first evidence fetch never gave up")
			}
			// The server's handler returning is not yet the webhook's
			// evaluation ending: wait until its flight is gone too.
			for deadline := time.Now().Add(30 * time.Second); f.waiting() > 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the first evaluation never ended")
				}
			}
		}
		resp, err := hc.Post(f.srv.URL+"/validate", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("the webhook did not answer: %v", err)
		}
		var r admissionv1.AdmissionReview
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r.Response.Allowed || r.Response.UID != "hang" {
			t.Fatalf("response %+v", r.Response)
		}
		if !strings.Contains(r.Response.Result.Message, "couldn't decide in environment prod: no answer from the evidence source within the deadline") {
			t.Errorf("message %q", r.Response.Result.Message)
		}
	}
	if hung.Load() != 2 {
		t.Errorf("evidence server asked %d times, want 2 (failures are not cached)", hung.Load())
	}
}

func TestUnreachableServer(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cl, err := client.New(dead.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Source = ServerSource(cl) })
	_, r := f.post(review(t, "u", "shop", podKind, pod("ghcr.io/org/app@"+goodDigest)))
	if r.Response.Allowed || !strings.Contains(r.Response.Result.Message, "couldn't fetch evidence") {
		t.Fatalf("response %+v", r.Response.Result)
	}
}

func TestCache(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DenyTTL = 5 * time.Second; c.AllowTTL = 10 * time.Hour })
	allowBody := review(t, "a", "shop", podKind, pod("app@"+goodDigest))
	denyBody := review(t, "d", "shop", podKind, pod("app@"+noSBOM))
	decide := func(body []byte) bool {
		t.Helper()
		_, r := f.post(body)
		return r.Response.Allowed
	}

	if !decide(allowBody) || !decide(allowBody) {
		t.Fatal("not allowed")
	}
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for two requests, want 1 (allow cached)", n)
	}
	// the same digest in another environment is another decision
	if !decide(review(t, "a2", "dev", podKind, pod("app@"+goodDigest))) || f.fetches.Load() != 2 {
		t.Errorf("dev: %d fetches", f.fetches.Load())
	}

	// denials are cached for DenyTTL only: fixed evidence counts after it
	f.fetches.Store(0)
	if decide(denyBody) || decide(denyBody) || f.fetches.Load() != 1 {
		t.Fatalf("deny: %d fetches, want 1", f.fetches.Load())
	}
	f.evidence[noSBOM] = append(f.evidence[noSBOM], f.sign(noSBOM, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX"}))
	if decide(denyBody) {
		t.Fatal("allowed before the denial expired from the cache")
	}
	f.advance(6 * time.Second)
	if !decide(denyBody) || f.fetches.Load() != 2 {
		t.Fatalf("fixed evidence not seen after DenyTTL: %d fetches", f.fetches.Load())
	}

	// an allow lasts until the evidence ages out of maxAge (24h after the
	// build, 1h ago), before AllowTTL (10h) would end it
	f.fetches.Store(0)
	f.advance(9 * time.Hour)
	if !decide(allowBody) || f.fetches.Load() != 0 {
		t.Fatalf("9h later: %d fetches, want a cached allow", f.fetches.Load())
	}
	f.advance(6 * time.Hour) // 15h after the first decision: its AllowTTL (10h) ended
	if !decide(allowBody) || f.fetches.Load() != 1 {
		t.Fatalf("after AllowTTL: %d fetches, want 1", f.fetches.Load())
	}
	f.advance(9 * time.Hour) // build + 25h: over maxAge; the cached allow expired at build + 24h
	if decide(allowBody) {
		t.Fatal("allowed from the cache after the evidence aged out of maxAge")
	}
	if f.fetches.Load() != 2 {
		t.Errorf("%d fetches, want 2", f.fetches.Load())
	}
}

func TestAllowExpiry(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	w := &Webhook{cfg: Config{AllowTTL: time.Hour}}
	prov := func(at time.Time) policy.Provenance {
		return policy.Provenance{Facts: attest.ProvenanceFacts{FinishedOn: at}}
	}
	p := mustPolicy(t, fmt.Sprintf(policyTmpl, "prod", strings.Repeat("ab", 32), ""))
	ev := &policy.Evidence{Provenance: []policy.Provenance{prov(now.Add(-23*time.Hour - 30*time.Minute)), prov(now.Add(-48 * time.Hour))}}
	if got, want := w.allowExpiry(p, ev, now), now.Add(30*time.Minute); !got.Equal(want) {
		t.Errorf("expiry %v, want %v (maxAge from the build, stale provenance ignored)", got, want)
	}
	ev = &policy.Evidence{Provenance: []policy.Provenance{prov(now.Add(-time.Hour))}}
	if got, want := w.allowExpiry(p, ev, now), now.Add(time.Hour); !got.Equal(want) {
		t.Errorf("expiry %v, want AllowTTL %v", got, want)
	}
	px := mustPolicy(t, fmt.Sprintf(policyTmpl, "prod", strings.Repeat("ab", 32),
		"maxSeverity: high\nexceptions: [{id: CVE-1, until: \"2026-05-01\", approvedBy: sec}]\n"))
	w.cfg.AllowTTL = 48 * time.Hour
	if got, want := w.allowExpiry(px, ev, now), time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("expiry %v, want the exception's end %v", got, want)
	}
}

// TestConcurrentMisses: concurrent requests for one uncached digest share
// one evaluation.
func TestConcurrentMisses(t *testing.T) {
	gateOpen := make(chan struct{})
	var f *fixture
	f = newFixture(t, func(c *Config) {
		inner := c.Source
		c.Source = SourceFunc(func(ctx context.Context, dg string) ([]gate.Bundle, error) {
			<-gateOpen
			return inner.Bundles(ctx, dg)
		})
		c.Timeout = time.Minute
	})
	body := review(t, "c", "shop", podKind, pod("app@"+goodDigest))
	var wg sync.WaitGroup
	allowed := make([]bool, 8)
	for i := range allowed {
		wg.Go(func() {
			_, r := f.post(body)
			allowed[i] = r.Response.Allowed
		})
	}
	for f.waiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	close(gateOpen)
	wg.Wait()
	for i, a := range allowed {
		if !a {
			t.Errorf("request %d denied", i)
		}
	}
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func (f *fixture) waiting() int {
	f.wh.mu.Lock()
	defer f.wh.mu.Unlock()
	return len(f.wh.flights)
}

func TestNamespaceWithoutEnvironment(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Namespaces = map[string]string{"shop": "prod"} })
	_, r := f.post(review(t, "n", "kube-system", podKind, pod("app@"+goodDigest)))
	if r.Response.Allowed || !strings.Contains(r.Response.Result.Message, `namespace "kube-system" has no environment`) {
		t.Fatalf("%+v", r.Response.Result)
	}
}

func TestNewRefuses(t *testing.T) {
	p := mustPolicy(t, fmt.Sprintf(policyTmpl, "prod", strings.Repeat("ab", 32), ""))
	src := DirSource(t.TempDir())
	tm, _ := gate.KeyMaterial()
	for name, c := range map[string]Config{
		"no policies":        {Source: src, Trust: tm},
		"env without policy": {Policies: map[string]*policy.Policy{"prod": p}, Namespaces: map[string]string{"a": "staging"}, Source: src, Trust: tm},
		"misnamed policy":    {Policies: map[string]*policy.Policy{"dev": p}, Source: src, Trust: tm},
		"no source":          {Policies: map[string]*policy.Policy{"prod": p}, Trust: tm},
		"no trust":           {Policies: map[string]*policy.Policy{"prod": p}, Source: src},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDirSource(t *testing.T) {
	f := newFixture(t, nil)
	dir := t.TempDir()
	for i, b := range append(f.evidence[goodDigest], f.evidence[noSBOM]...) {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.json", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := DirSource(dir).Bundles(context.Background(), goodDigest)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Errorf("%d bundles about the digest, want 2", len(bs))
	}
	if _, err := DirSource(filepath.Join(dir, "missing")).Bundles(context.Background(), goodDigest); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestMessage(t *testing.T) {
	long := strings.Repeat("é", 1000)
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("reason %d %s", i, long))
	}
	m := Message(lines)
	if len(m) > MaxMessageBytes {
		t.Errorf("message of %d bytes", len(m))
	}
	if !strings.Contains(m, "more reason(s)") {
		t.Errorf("no count of what was left out: %q", m[len(m)-80:])
	}
	for _, l := range strings.Split(m, "\n") {
		if len(l) > MaxLineBytes {
			t.Errorf("line %q", l)
		}
		if strings.ToValidUTF8(l, "?") != l {
			t.Errorf("line cut inside a rune: %q", l)
		}
	}
	if m := Message([]string{"a\nb", "c"}); m != "custody:\na b\nc" {
		t.Errorf("got %q", m)
	}
}

func TestRequestTimeout(t *testing.T) {
	w := &Webhook{cfg: Config{Timeout: 2 * time.Second}}
	for q, want := range map[string]time.Duration{"": 2 * time.Second, "?timeout=10s": 2 * time.Second,
		"?timeout=1s": 900 * time.Millisecond, "?timeout=bogus": 2 * time.Second, "?timeout=-1s": 2 * time.Second} {
		r := httptest.NewRequest("POST", "/validate"+q, nil)
		if got := w.requestTimeout(r); got != want {
			t.Errorf("%q: %v, want %v", q, got, want)
		}
	}
}

// TestDenialLogBounded: the values of a review that reach the log (uid,
// name, the first reason) are clipped, so a review of megabytes cannot
// write a log line of megabytes.
func TestDenialLogBounded(t *testing.T) {
	var logged bytes.Buffer
	f := newFixture(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logged, nil)) })
	long := strings.Repeat("x", 1<<20)
	p := pod("nginx:" + long)
	p.Name = long
	if status, r := f.post(review(t, "u-"+long, "shop", podKind, p)); status != http.StatusOK || r.Response.Allowed {
		t.Fatalf("status %d, response %+v: want a denial", status, r)
	}
	if status, r := f.post([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"Review","request":{"uid":"` + long + `"}}`)); status != http.StatusOK || r.Response.Allowed {
		t.Fatalf("malformed review: status %d: want a denial", status)
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2 denials", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(l, "admission denied") || len(l) > 8<<10 {
			t.Errorf("log line of %d bytes (want a denial under 8 KiB): %.200s…", len(l), l)
		}
		if !strings.Contains(l, "bytes)") {
			t.Errorf("clipped value does not say its length: %.300s", l)
		}
	}
}
