// Package admission is custody's Kubernetes validating admission webhook: it
// answers AdmissionReview v1 requests
// (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/)
// for Pods and the workloads that create them, admitting an object only when
// every image it would run is referenced by a sha256 digest and that digest's
// verified evidence (internal/gate) satisfies the policy (package policy) of
// the environment its namespace belongs to.
//
// It fails closed: a review it cannot parse, an image by tag, a namespace
// without an environment, an evidence source that errs or does not answer
// within the timeout, all deny with a reason. Allow decisions are cached per
// (environment, digest) until the evidence would be too old for the policy's
// maxAge (or an exception ends) and at most Config.AllowTTL; denials at most
// Config.DenyTTL; failures to decide are never cached.
//
// With Config.Quarantine (custody admission --data DIR: the incident
// ledger the deploy gate consults; --server URL: the server's, through an
// incident.Watcher), every decision, cached or not, first asks whether an
// incident quarantined the digest: a quarantined digest is denied naming
// the incident, even when an allow for it is cached, and a quarantine that
// cannot be read denies (fail closed). A Watcher answers from a local copy
// synced every interval, so a quarantine reaches the webhook within about
// one interval, and when the copy is older than its maximum staleness
// every request is denied (see SyncedQuarantine for its metrics).
//
// Namespaces map to environments by configuration only (Config.Namespaces):
// an AdmissionReview carries the object's labels, not its namespace's, so a
// namespace label could only be read with API access the webhook does not
// need and would let whoever may label namespaces pick their own policy.
//
// With Config.Decisions, every decision the webhook computes (a cache miss
// or re-evaluation, allow or deny, and the first quarantine denial of a
// digest in an environment within Config.DenyTTL) is recorded as a SLSA
// Verification Summary Attestation v1
// (https://slsa.dev/spec/v1.0/verification_summary) naming the policy
// version that decided and the request that asked (see VSA). Cached
// answers are not recorded again: the VSA of the decision they repeat is.
// Recording is asynchronous, through a bounded queue, so that the log's
// latency never counts against the API server's timeout; a decision that
// finds the queue full is dropped and counted in
// custody_admission_vsa_writes_total{result="dropped"}, never waited for.
//
// The webhook's Prometheus metrics (see Metrics) are served at GET /metrics.
package admission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sigstore/sigstore-go/pkg/root"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
)

// Defaults of Config.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultAllowTTL  = 5 * time.Minute
	DefaultDenyTTL   = 5 * time.Second
	DefaultCacheSize = 10000
)

// Message limits: the API server relays the message to the user (kubectl
// prints it whole), and stores it in audit events.
const (
	MaxMessageLines = 16
	MaxLineBytes    = 512
	MaxMessageBytes = 4096
)

// Config configures a Webhook.
type Config struct {
	// Policies are the environments' policies, by environment name.
	// Required, at least one.
	Policies map[string]*policy.Policy
	// Namespaces maps namespace names to environments; the entry "*" is
	// the environment of every other namespace. A namespace with no
	// environment is denied. Every environment named must have a policy.
	Namespaces map[string]string
	// Source finds the bundles about a digest. Required.
	Source Source
	// Trust is what the bundles are verified against (keys by hint, trusted
	// roots). Required.
	Trust root.TrustedMaterial
	// Quarantine, when set, is asked about every digest before its
	// (cached) decision: the quarantine the deploy gate consults
	// (incident.Quarantine over the incident ledger, or an
	// incident.Watcher of it). A quarantined digest is denied naming the
	// incident; an error denies. Its answers are not cached by the webhook.
	// One that implements SyncedQuarantine adds its sync metrics.
	Quarantine deploy.Quarantine
	// Timeout bounds deciding one request, evidence fetching included
	// (default DefaultTimeout). A request the API server sends with a
	// shorter ?timeout= gets that, less a margin for the answer.
	Timeout time.Duration
	// AllowTTL is the longest an allow decision is cached (default
	// DefaultAllowTTL); evidence that ages out of the policy's maxAge
	// sooner ends it sooner.
	AllowTTL time.Duration
	// DenyTTL is how long a denial is cached (default DefaultDenyTTL), so
	// that a denied image retried in a loop does not fetch evidence every
	// time but fixed evidence counts soon.
	DenyTTL time.Duration
	// CacheSize bounds the cached decisions (default DefaultCacheSize).
	CacheSize int
	// Logger receives one record per denial (Info) and allow (Debug); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Decisions, when set, records every computed decision as a signed
	// VSA (see the package doc); nil records nothing.
	Decisions Recorder
	// VerifierID is the VSAs' verifier.id (default DefaultVerifierID).
	VerifierID string
	// DecisionQueue bounds the decisions waiting to be recorded (default
	// DefaultDecisionQueue); one more is dropped and counted.
	DecisionQueue int
	// DecisionTimeout bounds recording one decision (default
	// DefaultDecisionTimeout).
	DecisionTimeout time.Duration
}

// Webhook decides admission reviews. It is safe for concurrent use.
type Webhook struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	rec     *recorder // nil without Config.Decisions

	mu      sync.Mutex
	cache   map[cacheKey]*verdict
	flights map[cacheKey]*flight
	// annotations are the audit annotations of the answers in each
	// environment, shared by them (never modified).
	annotations map[string]map[string]string
	// quarantineSeen is when each quarantine denial was last recorded, so
	// that a denied image retried in a loop is recorded once per DenyTTL.
	quarantineSeen map[quarantineKey]time.Time
}

type quarantineKey struct{ env, digest, incident string }

type cacheKey struct{ env, digest string }

// verdict is the decision about one digest in one environment.
type verdict struct {
	allowed bool
	policy  string   // digest of the policy that decided
	reasons []string // one line per failure
	expires time.Time
	// decision is what the policy decided (nil for a quarantine denial).
	decision *policy.Decision
	// quarantine is the incident that quarantined the digest, if any.
	quarantine string
}

type flight struct {
	done chan struct{}
	v    *verdict
	err  error
}

// New validates cfg and returns a webhook.
func New(cfg Config) (*Webhook, error) {
	if len(cfg.Policies) == 0 {
		return nil, errors.New("no policies")
	}
	for env, p := range cfg.Policies {
		if p == nil || p.Environment != env {
			return nil, fmt.Errorf("policy for environment %q is missing or names another environment", env)
		}
	}
	for ns, env := range cfg.Namespaces {
		if _, ok := cfg.Policies[env]; !ok {
			return nil, fmt.Errorf("namespace %s maps to environment %q, which has no policy", ns, env)
		}
	}
	if cfg.Source == nil {
		return nil, errors.New("no evidence source")
	}
	if cfg.Trust == nil {
		return nil, errors.New("no trusted material")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.AllowTTL <= 0 {
		cfg.AllowTTL = DefaultAllowTTL
	}
	if cfg.DenyTTL <= 0 {
		cfg.DenyTTL = DefaultDenyTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.VerifierID == "" {
		cfg.VerifierID = DefaultVerifierID
	}
	if cfg.DecisionQueue <= 0 {
		cfg.DecisionQueue = DefaultDecisionQueue
	}
	if cfg.DecisionTimeout <= 0 {
		cfg.DecisionTimeout = DefaultDecisionTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Webhook{cfg: cfg, log: log, metrics: newMetrics(), cache: map[cacheKey]*verdict{}, flights: map[cacheKey]*flight{},
		quarantineSeen: map[quarantineKey]time.Time{}}
	w.annotations = map[string]map[string]string{}
	for env, p := range cfg.Policies {
		w.annotations[env] = map[string]string{"environment": env, "policy": p.Digest()}
	}
	if q, ok := cfg.Quarantine.(SyncedQuarantine); ok {
		w.metrics.watchQuarantine(q, cfg.Now)
	}
	if cfg.Decisions != nil {
		w.rec = newRecorder(cfg.Decisions, cfg.VerifierID, cfg.DecisionQueue, cfg.DecisionTimeout, w.metrics, log)
	}
	return w, nil
}

// Metrics returns the webhook's metrics.
func (w *Webhook) Metrics() *Metrics { return w.metrics }

// Close stops recording decisions and waits until those queued are
// written, or ctx ends (the error then says how many were not). Review
// still answers after Close; what it decides is no longer recorded.
func (w *Webhook) Close(ctx context.Context) error {
	if w.rec == nil {
		return nil
	}
	return w.rec.close(ctx)
}

// Environment returns the environment of a namespace, or "" when it has
// none.
func (w *Webhook) Environment(namespace string) string {
	if env, ok := w.cfg.Namespaces[namespace]; ok {
		return env
	}
	return w.cfg.Namespaces["*"]
}

// Review decides one admission request. It always returns a response
// (allowed or not) with the request's uid, within ctx's deadline.
func (w *Webhook) Review(ctx context.Context, req *Request) *admissionv1.AdmissionResponse {
	resp := w.answer(ctx, req)
	resp.AuditAnnotations = maps.Clone(resp.AuditAnnotations)
	return resp
}

// answer is Review, except that the response's audit annotations are
// shared with every other answer in the same environment (not to be
// modified).
func (w *Webhook) answer(ctx context.Context, req *Request) *admissionv1.AdmissionResponse {
	start := time.Now()
	resp, reason := w.review(ctx, req)
	w.observe(start, resp.Allowed, reason)
	return resp
}

// observe counts one answered request.
func (w *Webhook) observe(start time.Time, allowed bool, reason string) {
	result := "denied"
	if allowed {
		result = "allowed"
	}
	w.metrics.decisions.WithLabelValues(result, reason).Inc()
	w.metrics.latency.Observe(time.Since(start).Seconds())
}

// review is Review, also returning the reason class of the answer.
func (w *Webhook) review(ctx context.Context, req *Request) (*admissionv1.AdmissionResponse, string) {
	uid := types.UID(req.UID)
	switch admissionv1.Operation(req.Operation) {
	case admissionv1.Delete, admissionv1.Connect:
		// Deleting an object or connecting to a pod runs no new image.
		return allow(uid), ReasonOperation
	case admissionv1.Create, admissionv1.Update:
	case "":
		return deny(uid, fmt.Sprintf("operation %q is not one custody admission decides", req.Operation)), ReasonMalformed
	default:
		return deny(uid, fmt.Sprintf("operation %q is not one custody admission decides", req.Operation)), ReasonOperation
	}
	images, err := Images(req)
	if err != nil {
		return deny(uid, err.Error()), ReasonMalformed
	}
	env := w.Environment(req.Namespace)
	if env == "" {
		return deny(uid, fmt.Sprintf("namespace %q has no environment, so no policy admits anything into it", req.Namespace),
			"map it with --namespace-env "+req.Namespace+"=ENV (or *=ENV), or exclude the namespace in the webhook's namespaceSelector"), ReasonNamespace
	}

	var lines []string
	var digestsBuf [4]string
	digests := digestsBuf[:0] // distinct, in order; a pod names few
	reason := ReasonPassed
	for _, im := range images {
		if im.Digest == "" {
			lines = append(lines, fmt.Sprintf("%s image %q: %s", im.Where, im.Ref, im.Problem))
			reason = ReasonImageRef
			continue
		}
		if !slices.Contains(digests, im.Digest) {
			digests = append(digests, im.Digest)
		}
	}
	if len(images) == 0 {
		return allow(uid), ReasonNoImages
	}

	// Decide every digest at once; the slowest bounds the answer.
	var one [1]result
	var results []result
	if len(digests) == 1 { // the common case: no goroutine on a cache hit
		v, err := w.decide(ctx, env, digests[0], req)
		one[0] = result{v, err}
		results = one[:]
	} else {
		results = w.decideAll(ctx, env, digests, req)
	}

	policyDigest := w.cfg.Policies[env].Digest()
	for _, im := range images {
		i := slices.Index(digests, im.Digest)
		if i < 0 || results[i].v == nil && results[i].err == nil {
			continue // not by digest, or its result already reported
		}
		r := results[i]
		switch {
		case r.err != nil:
			results[i] = result{}
			lines = append(lines, fmt.Sprintf("%s image %q: couldn't decide in environment %s: %s", im.Where, im.Ref, env, r.err))
			reason = worse(reason, ReasonUndecided)
		case !r.v.allowed:
			results[i] = result{}
			if r.v.quarantine != "" {
				reason = worse(reason, ReasonQuarantine)
			} else {
				reason = worse(reason, ReasonPolicy)
			}
			for _, why := range r.v.reasons {
				lines = append(lines, fmt.Sprintf("%s image %s: %s", im.Where, shortRef(im.Ref), why))
			}
		}
	}
	if len(lines) > 0 {
		w.log.Info("admission denied", "uid", clip(string(uid)), "namespace", clip(req.Namespace), "kind", clip(req.Kind.Kind), "name", clip(req.Name),
			"environment", env, "policy", policyDigest, "reasons", len(lines), "first", clip(lines[0]))
		resp := deny(uid, lines...)
		resp.AuditAnnotations = w.annotations[env]
		return resp, reason
	}
	if w.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations
		w.log.Debug("admission allowed", "uid", uid, "namespace", req.Namespace, "kind", req.Kind.Kind, "name", req.Name,
			"environment", env, "policy", policyDigest, "images", len(images))
	}
	resp := allow(uid)
	resp.AuditAnnotations = w.annotations[env]
	return resp, ReasonPassed
}

// result is the verdict about one digest, or why there is none.
type result struct {
	v   *verdict
	err error
}

// decideAll decides the digests concurrently.
func (w *Webhook) decideAll(ctx context.Context, env string, digests []string, req *Request) []result {
	results := make([]result, len(digests))
	var wg sync.WaitGroup
	for i, dg := range digests {
		wg.Go(func() {
			v, err := w.decide(ctx, env, dg, req)
			results[i] = result{v, err}
		})
	}
	wg.Wait()
	return results
}

// denialOrder ranks the reason classes of a denial with several: the first
// in this order is counted.
var denialOrder = map[string]int{ReasonImageRef: 1, ReasonUndecided: 2, ReasonQuarantine: 3, ReasonPolicy: 4, ReasonPassed: 5}

// worse returns whichever of the reason classes a and b ranks first.
func worse(a, b string) string {
	if denialOrder[b] < denialOrder[a] {
		return b
	}
	return a
}

// shortRef abbreviates a digest reference for messages: NAME@sha256:12 hex….
func shortRef(ref string) string {
	if i := strings.LastIndex(ref, "@sha256:"); i >= 0 && len(ref)-i > len("@sha256:")+12 {
		return ref[:i+len("@sha256:")+12] + "…"
	}
	return ref
}

// decide returns the cached verdict about digest in env, or makes one. A
// failure to decide (source error, timeout) is returned as an error and not
// cached. Concurrent misses for the same key share one evaluation, which
// runs under its own Timeout so that a caller giving up does not fail the
// others.
//
// req is the request asking, recorded in the VSA of a decision it causes
// (read only then: a cache hit costs no more for it).
func (w *Webhook) decide(ctx context.Context, env, digest string, req *Request) (*verdict, error) {
	if v, err := w.quarantined(ctx, digest); v != nil || err != nil {
		if v != nil {
			w.metrics.quarantined.Inc()
			w.recordQuarantine(env, digest, v, req)
		}
		return v, err
	}
	key := cacheKey{env, digest}
	now := w.cfg.Now()
	w.mu.Lock()
	if v, ok := w.cache[key]; ok {
		if now.Before(v.expires) {
			w.mu.Unlock()
			w.metrics.cache.WithLabelValues("hit").Inc()
			return v, nil
		}
		delete(w.cache, key)
	}
	f, ok := w.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		w.flights[key] = f
		var res *Resource
		if w.rec != nil {
			res = resourceOf(req)
		}
		go w.fly(key, f, res)
	}
	w.mu.Unlock()
	w.metrics.cache.WithLabelValues("miss").Inc()
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		return nil, deadlineErr(ctx.Err(), w.cfg.Timeout)
	}
}

// quarantined returns a denial when Config.Quarantine says an incident
// quarantined digest, and an error when it cannot say; neither is cached,
// so that the quarantine is consulted on every decision and overrides a
// cached allow.
func (w *Webhook) quarantined(ctx context.Context, digest string) (*verdict, error) {
	if w.cfg.Quarantine == nil {
		return nil, nil
	}
	id, err := w.cfg.Quarantine.Quarantined(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the incident quarantine, so it is denied: %w", err)
	}
	if id == "" {
		return nil, nil
	}
	return &verdict{quarantine: id, reasons: []string{fmt.Sprintf("%s by incident %s (see custody incident show %s)", deploy.ErrQuarantined, id, id)}}, nil
}

// recordQuarantine records the quarantine denial v of digest in env,
// unless the same incident's denial there was recorded within DenyTTL.
func (w *Webhook) recordQuarantine(env, digest string, v *verdict, req *Request) {
	if w.rec == nil {
		return
	}
	now := w.cfg.Now()
	key := quarantineKey{env, digest, v.quarantine}
	w.mu.Lock()
	if until, ok := w.quarantineSeen[key]; ok && now.Before(until) {
		w.mu.Unlock()
		return
	}
	if len(w.quarantineSeen) >= w.cfg.CacheSize {
		for k, until := range w.quarantineSeen {
			if !now.Before(until) || len(w.quarantineSeen) >= w.cfg.CacheSize {
				delete(w.quarantineSeen, k)
			}
		}
	}
	w.quarantineSeen[key] = now.Add(w.cfg.DenyTTL)
	w.mu.Unlock()
	d := &policy.Decision{Environment: env, PolicyDigest: w.cfg.Policies[env].Digest(), Artifact: digest, Time: now.UTC(),
		Failures: []policy.Failure{{Requirement: "quarantine", Message: v.reasons[0],
			Fix: "deploy an artifact the incident does not affect ('custody incident show " + v.quarantine + "')"}},
		Passed: []string{}}
	w.rec.enqueue(d, resourceOf(req))
}

// res is the request that asked (nil when nothing is recorded), read
// before: the request's bytes are the handler's and reused after it answers.
func (w *Webhook) fly(key cacheKey, f *flight, res *Resource) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	v, err := w.evaluate(ctx, key.env, key.digest)
	f.v, f.err = v, err
	w.mu.Lock()
	delete(w.flights, key)
	if err == nil {
		w.store(key, v)
	}
	w.mu.Unlock()
	// Queued before the waiters are answered (enqueue never blocks), so
	// that a Close after the answer finds the decision in the queue.
	if err == nil && w.rec != nil && v.decision != nil {
		w.rec.enqueue(v.decision, res)
	}
	close(f.done)
}

// store caches v; w.mu is held.
func (w *Webhook) store(key cacheKey, v *verdict) {
	now := w.cfg.Now()
	if !now.Before(v.expires) {
		return
	}
	if len(w.cache) >= w.cfg.CacheSize {
		for k, old := range w.cache {
			if !now.Before(old.expires) {
				delete(w.cache, k)
			}
		}
		// Still full: drop arbitrary entries (map order) until there is room.
		for k := range w.cache {
			if len(w.cache) < w.cfg.CacheSize {
				break
			}
			delete(w.cache, k)
		}
	}
	w.cache[key] = v
}

func deadlineErr(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer from the evidence source within the deadline (timeout %s)", timeout)
	}
	return err
}

// evaluate fetches, verifies and judges the evidence about digest.
func (w *Webhook) evaluate(ctx context.Context, env, digest string) (*verdict, error) {
	p := w.cfg.Policies[env]
	bundles, err := w.cfg.Source.Bundles(ctx, digest)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			w.metrics.evidenceErrors.WithLabelValues("timeout").Inc()
			return nil, deadlineErr(context.DeadlineExceeded, w.cfg.Timeout)
		case errors.Is(err, client.ErrUnreachable):
			w.metrics.evidenceErrors.WithLabelValues("unreachable").Inc()
			return nil, fmt.Errorf("couldn't fetch evidence: %w", err)
		}
		w.metrics.evidenceErrors.WithLabelValues("fetch").Inc()
		return nil, fmt.Errorf("couldn't fetch evidence: %w", err)
	}
	ev, rejected, err := gate.Gather(ctx, digest, gate.JSONs(bundles), w.cfg.Trust)
	if err != nil {
		w.metrics.evidenceErrors.WithLabelValues("verify").Inc()
		return nil, deadlineErr(fmt.Errorf("couldn't verify evidence: %w", err), w.cfg.Timeout)
	}
	now := w.cfg.Now()
	d, err := p.Evaluate(ctx, ev, now)
	if err != nil {
		return nil, deadlineErr(fmt.Errorf("couldn't evaluate policy: %w", err), w.cfg.Timeout)
	}
	if d.Allowed {
		return &verdict{allowed: true, policy: d.PolicyDigest, expires: w.allowExpiry(p, ev, now), decision: d}, nil
	}
	v := &verdict{policy: d.PolicyDigest, expires: now.Add(w.cfg.DenyTTL), decision: d}
	for _, f := range d.Failures {
		line := fmt.Sprintf("denied in %s: %s: %s", env, f.Requirement, f.Message)
		if f.Fix != "" {
			line += " (fix: " + f.Fix + ")"
		}
		v.reasons = append(v.reasons, line)
	}
	if len(rejected) > 0 {
		v.reasons = append(v.reasons, fmt.Sprintf("%d bundle(s) about it were ignored; the first: %s", len(rejected), rejected[0].Reason))
	}
	return v, nil
}

// allowExpiry is when an allow decided at now stops being cacheable: after
// AllowTTL, at the end of a vulnerability exception, or when the youngest
// build time that satisfied maxAge gets too old. Only provenance still
// within maxAge at now can be the one that made the decision, so the
// earliest of their expiries is a safe bound.
func (w *Webhook) allowExpiry(p *policy.Policy, ev *policy.Evidence, now time.Time) time.Time {
	exp := now.Add(w.cfg.AllowTTL)
	if p.MaxAge != "" {
		maxAge, err := policy.ParseDuration(p.MaxAge)
		if err != nil {
			return now // cannot tell: do not cache
		}
		for _, pv := range ev.Provenance {
			at := pv.Facts.FinishedOn
			if at.IsZero() {
				at = pv.Facts.StartedOn
			}
			if at.IsZero() {
				at = pv.SignedAt
			}
			if at.IsZero() {
				continue
			}
			if e := at.Add(maxAge); e.After(now) && e.Before(exp) {
				exp = e
			}
		}
	}
	for _, x := range p.Exceptions {
		until, err := time.Parse(time.DateOnly, x.Until)
		if err != nil {
			return now
		}
		if e := until.Add(24 * time.Hour); e.After(now) && e.Before(exp) {
			exp = e
		}
	}
	return exp
}

func allow(uid types.UID) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{UID: uid, Allowed: true}
}

// deny answers with the reasons, one per line, truncated to the message
// limits.
func deny(uid types.UID, lines ...string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{UID: uid, Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
		Message: Message(lines),
	}}
}

// Message joins reasons into a denial message: "custody: " then one reason
// per line, each cut to MaxLineBytes, at most MaxMessageLines of them and
// MaxMessageBytes in all, with a last line counting what was left out.
func Message(lines []string) string {
	var b strings.Builder
	b.WriteString("custody:")
	for i, l := range lines {
		l = truncate(strings.Join(strings.Fields(l), " "), MaxLineBytes)
		more := len(lines) - i
		if i == MaxMessageLines || b.Len()+1+len(l) > MaxMessageBytes-40 {
			fmt.Fprintf(&b, "\n… and %d more reason(s)", more)
			break
		}
		b.WriteString("\n")
		b.WriteString(l)
	}
	return b.String()
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Handler serves the webhook: POST /validate (AdmissionReview v1), GET
// /healthz and GET /metrics (Prometheus exposition format). A body that is not JSON gets 400; a JSON body that is not a
// usable review gets 200 with a denial that echoes its uid when it has one.
func (w *Webhook) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(rw, "ok\n")
	})
	mux.HandleFunc("POST /validate", w.serveValidate)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

func (w *Webhook) serveValidate(rw http.ResponseWriter, r *http.Request) {
	buf := buffers.Get().(*[]byte)
	defer putBuffer(buf)
	body, err := readBody((*buf)[:0], r.Body, MaxReviewBytes)
	*buf = body
	if err != nil {
		http.Error(rw, "couldn't read request body", http.StatusBadRequest)
		return
	}
	if len(body) > MaxReviewBytes {
		http.Error(rw, fmt.Sprintf("request body over %d bytes", MaxReviewBytes), http.StatusRequestEntityTooLarge)
		return
	}
	start := time.Now()
	req, err := ParseReview(body)
	if errors.Is(err, errNotJSON) {
		http.Error(rw, "request body is not JSON; want an admission.k8s.io/v1 AdmissionReview", http.StatusBadRequest)
		return
	}
	var resp *admissionv1.AdmissionResponse
	if err != nil {
		var uid types.UID
		if req != nil {
			uid = types.UID(req.UID)
		}
		w.log.Info("admission denied", "uid", clip(string(uid)), "reason", clip(err.Error()))
		resp = deny(uid, err.Error())
		w.observe(start, false, ReasonMalformed)
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), w.requestTimeout(r))
		resp = w.answer(ctx, req)
		cancel()
	}
	// The body is not read after this: its buffer holds the answer.
	out, err := appendReview((*buf)[:0], resp)
	*buf = out
	if err != nil {
		http.Error(rw, "couldn't encode response", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Write(out)
}

// buffers holds the buffers serveValidate reads a review and writes its
// answer into.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func putBuffer(b *[]byte) {
	if cap(*b) <= 64<<10 { // a rare large review does not stay in memory
		*b = (*b)[:0]
		buffers.Put(b)
	}
}

// readBody appends what r reads to b until EOF or more than limit bytes.
func readBody(b []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > limit || err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// requestTimeout is Config.Timeout, or less when the API server says it
// waits less (it calls webhooks with ?timeout=10s): that less a tenth, so
// that the denial arrives in time.
func (w *Webhook) requestTimeout(r *http.Request) time.Duration {
	t := w.cfg.Timeout
	if r.URL.RawQuery == "" {
		return t
	}
	if q := r.URL.Query().Get("timeout"); q != "" {
		if d, err := time.ParseDuration(q); err == nil && d > 0 {
			if d -= d / 10; d < t {
				t = d
			}
		}
	}
	return t
}

// maxLogField is the most of one request-controlled value a log line
// carries: a review of megabytes must not become a log line of megabytes.
const maxLogField = 512

// clip shortens s to maxLogField bytes (on a rune boundary), saying how
// long it was.
func clip(s string) string {
	if len(s) <= maxLogField {
		return s
	}
	cut := maxLogField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}
