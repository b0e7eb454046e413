package admission

import (
	"bufio"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

// recorded is one decision a test Recorder signed.
type recorded struct {
	env, digest string
	bundle      []byte
}

// signingRecorder signs each decision with key and keeps the bundles.
type signingRecorder struct {
	key crypto.Signer
	mu  sync.Mutex
	got []recorded
}

func (r *signingRecorder) Record(ctx context.Context, env, digest string, vsa []byte) error {
	b, err := signer.SignStatement(ctx, r.key, vsa)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.got = append(r.got, recorded{env, digest, b})
	r.mu.Unlock()
	return nil
}

func (r *signingRecorder) bundles() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// readVSA verifies bundle against the verifier key and returns its
// predicate.
func readVSA(t *testing.T, bundle []byte, digest string, verifier crypto.PublicKey) (vsaPredicate, *attest.Statement) {
	t.Helper()
	tm, err := verify.PublicKeyMaterial(verifier)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(context.Background(), bundle, verify.Artifact{Digests: map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}},
		tm, verify.Requirements{PredicateType: attest.PredicateVSA})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Fatalf("VSA bundle does not verify with the verifier key: %+v", rep.Failed())
	}
	var pred vsaPredicate
	if err := json.Unmarshal(rep.Statement.Predicate, &pred); err != nil {
		t.Fatal(err)
	}
	return pred, rep.Statement
}

// scrape returns the webhook's /metrics as series → value, a series being
// written as the exposition format writes it: name{label="v",...}.
func (f *fixture) scrape() map[string]float64 {
	f.t.Helper()
	resp, err := f.srv.Client().Get(f.srv.URL + "/metrics")
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			f.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func checkMetrics(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
}

// TestDecisionsRecorded: an allow and a deny are each recorded once as a
// VSA that verifies with the verifier's key and names the verdict, the
// policy version that decided and the request that asked; cached answers,
// tag references and malformed reviews are not recorded; /metrics counts
// all of it.
func TestDecisionsRecorded(t *testing.T) {
	vk, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	rec := &signingRecorder{key: vk}
	f := newFixture(t, func(c *Config) { c.Decisions = rec })

	allowedWant := map[string]bool{"a1": true, "a2": true, "d1": false, "d2": false, "t1": false}
	posts := []struct{ uid, ns, image string }{
		{"a1", "web", "app@" + goodDigest}, // dev: allowed, computed
		{"a2", "web", "app@" + goodDigest}, // cached
		{"d1", "shop", "app@" + noSBOM},    // prod needs an SBOM: denied, computed
		{"d2", "shop", "app@" + noSBOM},    // cached
		{"t1", "shop", "app:latest"},       // by tag: denied before any decision
	}
	for _, p := range posts {
		_, r := f.post(review(t, p.uid, p.ns, podKind, pod(p.image)))
		if r.Response.Allowed != allowedWant[p.uid] {
			t.Fatalf("%s: allowed=%v, want %v (%+v)", p.uid, r.Response.Allowed, allowedWant[p.uid], r.Response.Result)
		}
	}
	if code, _ := f.post([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`)); code != 200 {
		t.Fatalf("review without request: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.wh.Close(ctx); err != nil {
		t.Fatal(err)
	}

	got := rec.bundles()
	if len(got) != 2 {
		t.Fatalf("%d decisions recorded, want 2 (one allow, one deny; cached answers are not recorded again)", len(got))
	}
	byEnv := map[string]recorded{}
	for _, r := range got {
		byEnv[r.env] = r
	}
	cases := []struct {
		env, digest, result, ns, uid string
	}{
		{"dev", goodDigest, attest.VSAPassed, "web", "a1"},
		{"prod", noSBOM, attest.VSAFailed, "shop", "d1"},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			r, ok := byEnv[c.env]
			if !ok || r.digest != c.digest {
				t.Fatalf("no decision recorded for %s in %s: %+v", c.digest, c.env, got)
			}
			pred, st := readVSA(t, r.bundle, c.digest, vk.Public())
			if st.PredicateType != "https://slsa.dev/verification_summary/v1" {
				t.Errorf("predicateType %s", st.PredicateType)
			}
			if pred.VerificationResult != c.result || pred.Verifier.ID != DefaultVerifierID {
				t.Errorf("verificationResult %s verifier %s, want %s %s", pred.VerificationResult, pred.Verifier.ID, c.result, DefaultVerifierID)
			}
			pd := f.wh.cfg.Policies[c.env].Digest()
			if pred.Policy.URI != policy.PolicyURI(c.env) || "sha256:"+pred.Policy.Digest["sha256"] != pd {
				t.Errorf("policy %+v, want %s with digest %s", pred.Policy, policy.PolicyURI(c.env), pd)
			}
			if pred.ResourceURI != policy.EnvironmentURI(c.env) {
				t.Errorf("resourceUri %s", pred.ResourceURI)
			}
			if pred.Custody == nil || pred.Custody.Admission == nil {
				t.Fatalf("no custody.admission in the predicate")
			}
			want := Resource{UID: c.uid, Namespace: c.ns, Kind: "v1/Pod", Name: "web", Operation: "CREATE", Mode: ModeEnforce}
			if *pred.Custody.Admission != want {
				t.Errorf("custody.admission %+v, want %+v", *pred.Custody.Admission, want)
			}
			if pred.Custody.Environment != c.env {
				t.Errorf("custody.environment %s", pred.Custody.Environment)
			}
			denied := c.result == attest.VSAFailed
			if denied != (len(pred.Custody.Failures) > 0) {
				t.Errorf("failures %+v for %s", pred.Custody.Failures, c.result)
			}
			if denied && !strings.Contains(pred.Custody.Failures[0].Requirement+pred.Custody.Failures[0].Message, "sbom") {
				t.Errorf("the denial does not name the missing SBOM: %+v", pred.Custody.Failures)
			}
		})
	}

	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_decisions_total{reason="passed",result="allowed"}`:   2,
		`custody_admission_decisions_total{reason="policy",result="denied"}`:    2,
		`custody_admission_decisions_total{reason="image_ref",result="denied"}`: 1,
		`custody_admission_decisions_total{reason="malformed",result="denied"}`: 1,
		`custody_admission_decision_seconds_count`:                              6,
		`custody_admission_cache_lookups_total{result="hit"}`:                   2,
		`custody_admission_cache_lookups_total{result="miss"}`:                  2,
		`custody_admission_vsa_writes_total{result="ok"}`:                       2,
		`custody_admission_vsa_writes_total{result="failed"}`:                   0,
		`custody_admission_vsa_writes_total{result="dropped"}`:                  0,
		`custody_admission_quarantine_denials_total`:                            0,
	})
}

// TestQuarantineRecorded: a quarantine denial is recorded once (not once
// per retry) with the incident as its failure, and counted.
func TestQuarantineRecorded(t *testing.T) {
	vk, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	rec := &signingRecorder{key: vk}
	ledger := incident.FileLedger{Dir: filepath.Join(t.TempDir(), "incidents")}
	f := newFixture(t, func(c *Config) {
		c.Decisions = rec
		c.Quarantine = incident.Quarantine{Ledger: ledger}
	})
	id, err := incident.NewID(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Append(context.Background(), &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined,
		Artifact: goodDigest, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, r := f.post(review(t, fmt.Sprintf("q%d", i), "web", podKind, pod("app@"+goodDigest))); r.Response.Allowed {
			t.Fatal("quarantined digest allowed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.bundles()
	if len(got) != 1 {
		t.Fatalf("%d decisions recorded, want 1 (retries are not recorded again while the identical denial's record is recent)", len(got))
	}
	pred, _ := readVSA(t, got[0].bundle, goodDigest, vk.Public())
	if pred.VerificationResult != attest.VSAFailed || pred.Custody == nil || len(pred.Custody.Failures) != 1 ||
		pred.Custody.Failures[0].Requirement != "quarantine" || !strings.Contains(pred.Custody.Failures[0].Message, id) {
		t.Fatalf("quarantine VSA: %+v", pred)
	}
	if pred.Custody.Admission == nil || pred.Custody.Admission.UID != "q0" {
		t.Errorf("custody.admission %+v, want the first request q0", pred.Custody.Admission)
	}
	if "sha256:"+pred.Policy.Digest["sha256"] != f.wh.cfg.Policies["dev"].Digest() {
		t.Errorf("policy digest %v", pred.Policy.Digest)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_quarantine_denials_total`:                             3,
		`custody_admission_decisions_total{reason="quarantine",result="denied"}`: 3,
		`custody_admission_vsa_writes_total{result="ok"}`:                        1,
	})
	if n := f.fetches.Load(); n != 0 {
		t.Errorf("%d evidence fetches for a quarantined digest", n)
	}
}

// TestEvidenceErrorsCounted: a source that errs denies, is counted as an
// evidence error and records no decision (there was none).
func TestEvidenceErrorsCounted(t *testing.T) {
	rec := &signingRecorder{}
	f := newFixture(t, func(c *Config) {
		c.Decisions = rec
		c.Source = SourceFunc(func(context.Context, string) ([]gate.Bundle, error) {
			return nil, errors.New("index is down")
		})
	})
	if _, r := f.post(review(t, "e1", "web", podKind, pod("app@"+goodDigest))); r.Response.Allowed {
		t.Fatal("allowed without evidence")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.bundles()); n != 0 {
		t.Errorf("%d decisions recorded for a failure to decide", n)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_evidence_errors_total{cause="fetch"}`:                1,
		`custody_admission_decisions_total{reason="undecided",result="denied"}`: 1,
		`custody_admission_vsa_writes_total{result="ok"}`:                       0,
	})
}

// TestDecisionQueueFull: a recorder that does not return never delays an
// answer: decisions beyond the workers and the queue are dropped and
// counted, and failed writes are counted.
func TestDecisionQueueFull(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	f := newFixture(t, func(c *Config) {
		c.DecisionQueue = 1
		c.Decisions = RecorderFunc(func(ctx context.Context, _, _ string, _ []byte) error {
			entered <- struct{}{}
			<-release
			return errors.New("log unavailable")
		})
	})
	digest := func(i int) string { return "sha256:" + strings.Repeat(fmt.Sprintf("%02x", 0xd0+i), 32) }
	post := func(i int) {
		t.Helper()
		if _, r := f.post(review(t, fmt.Sprintf("u%d", i), "web", podKind, pod("app@"+digest(i)))); r.Response.Allowed {
			t.Fatalf("digest without evidence allowed")
		}
	}
	// Both workers busy with the first two decisions…
	post(0)
	post(1)
	for range decisionWorkers {
		<-entered
	}
	// …the third waits in the queue, the next two are dropped; every
	// request is still answered.
	for i := 2; i < 5; i++ {
		post(i)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_vsa_writes_total{result="dropped"}`:               2,
		`custody_admission_decisions_total{reason="policy",result="denied"}`: 5,
	})
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, f.scrape(), map[string]float64{
		`custody_admission_vsa_writes_total{result="failed"}`:  3,
		`custody_admission_vsa_writes_total{result="dropped"}`: 2,
		`custody_admission_vsa_writes_total{result="ok"}`:      0,
	})
}

// TestSourcesSkipDecisions: decisions about a digest (custody deploy's,
// the webhook's own) are not evidence for the next decision.
func TestSourcesSkipDecisions(t *testing.T) {
	f := newFixture(t, nil)
	dir := t.TempDir()
	files := map[string][]byte{
		"prov.json":                 f.evidence[noSBOM][0],
		"decisions/vsa-prod-1.json": f.sign(noSBOM, attest.PredicateVSA, map[string]any{"verificationResult": "PASSED"}),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := DirSource(dir).Bundles(context.Background(), noSBOM)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || !strings.HasSuffix(bs[0].Name, "prov.json") {
		t.Fatalf("bundles %+v, want only the provenance", bs)
	}
}
