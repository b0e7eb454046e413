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
// The deadline holds end to end, whatever the review: a request is decided
// under one context deadline (Config.Timeout, or less when the API server
// waits less), which bounds reading its body, the quarantine checks, the
// evidence fetches, their verification and the policy; what is not
// decided by then is denied naming the timeout, and every evaluation the
// request started gives up at that same deadline. A request naming more
// distinct image digests than Config.MaxImages is denied before any of
// that, naming the cap; the others are decided by a pool of
// Config.Concurrency workers, and at most Config.Concurrency evaluations
// run at once across all requests (a digest waiting for one past the
// deadline is denied as such).
//
// Namespaces map to environments by configuration only (Config.Namespaces):
// an AdmissionReview carries the object's labels, not its namespace's, so a
// namespace label could only be read with API access the webhook does not
// need and would let whoever may label namespaces pick their own policy.
//
// With Config.Decisions, every decision the webhook computes (a cache miss
// or re-evaluation, allow or deny, and a quarantine denial) is recorded as
// a SLSA Verification Summary Attestation v1
// (https://slsa.dev/spec/v1.0/verification_summary) naming the policy
// version that decided and the request that asked (see VSA), unless an
// identical decision (same digest, environment, policy version, verdict,
// failures and evidence) was recorded less than Config.AllowTTL before.
// The record is for an auditor to replay why an image was admitted or
// refused; cached answers already rely on a decision up to AllowTTL old,
// so an identical decision recomputed within it adds no fact (the requests
// it answered are in the API server's audit log, with the policy version
// in their annotations). Cached answers are not recorded: the VSA of the
// decision they repeat is. Recording is asynchronous, through a bounded
// queue, so that the log's latency never counts against the API server's
// timeout; a decision that finds the queue full is dropped and counted in
// custody_admission_vsa_writes_total{result="dropped"}, never waited for,
// and one skipped as identical is counted as result="duplicate".
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
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sigstore/sigstore-go/pkg/root"
	"golang.org/x/sync/errgroup"
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
	// DefaultMaxImages is the default cap on the distinct image digests of
	// one request. Kubernetes sets no limit on a pod's containers, but real
	// pods run a few images (an application, its sidecars and init
	// containers: rarely more than 20 distinct digests); 64 leaves room
	// for the largest while bounding the work one request can cause to 64
	// evaluations and 64 VSAs (bench/admission: a review at the cap,
	// every digest evaluated cold, is answered well within the default
	// timeout).
	DefaultMaxImages = 64
	// DefaultConcurrency is the default bound on evaluations in progress
	// at once. An evaluation mostly waits for the evidence source (a
	// round trip to custody serve) and then verifies a few signatures
	// (about a millisecond of CPU each), so a few per CPU keep the CPUs
	// and the source busy without letting one large review take every
	// goroutine the runtime schedules.
	DefaultConcurrency = 8
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
	// Source finds the bundles about a digest. Required unless Attached
	// is set.
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
	// Timeout bounds deciding one request, end to end: reading its body,
	// quarantine checks, evidence fetching, verification and policy
	// (default DefaultTimeout). A request the API server sends with a
	// shorter ?timeout= gets that, less a margin for the answer.
	Timeout time.Duration
	// MaxImages caps the distinct image digests one request may name
	// (default DefaultMaxImages); a request naming more is denied, naming
	// the cap, before any evidence is fetched or decision recorded.
	MaxImages int
	// Concurrency bounds the evaluations (evidence fetch, verification,
	// policy) in progress at once across all requests, and the workers
	// deciding one request's digests (default DefaultConcurrency).
	Concurrency int
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
	// DefaultDecisionQueue); one more is dropped and counted. Each waits
	// with the request fields of its VSA cut to maxLogField bytes, so the
	// queue holds a bounded number of bytes too.
	DecisionQueue int
	// DecisionTimeout bounds recording one decision (default
	// DefaultDecisionTimeout).
	DecisionTimeout time.Duration
	// Attached, when set, finds the evidence attached to each image in
	// its registry (one of Registries), in addition to Source's; a
	// decision is then about a digest in one repository.
	Attached Attached
	// Resolver, when set, resolves tags to digests for POST /mutate
	// (see Mutate); nil: /mutate is not served.
	Resolver Resolver
	// Registries are the registries (host[:port]; "docker.io" for Docker
	// Hub, "*" for any) at which /mutate resolves tags and from which
	// Attached reads evidence; an image at another is refused. Required
	// with Resolver or Attached: both make the webhook call the registry
	// an object names.
	Registries []string
	// Modes say what happens to a request its environment's policy
	// denies: denied (ModeEnforce, the default), or admitted with warnings
	// (ModeWarn) or silently (ModeAudit); see Mode.
	Modes Modes
}

// Webhook decides admission reviews. It is safe for concurrent use.
type Webhook struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	rec     *recorder // nil without Config.Decisions
	// slots holds a token per evaluation in progress (Config.Concurrency).
	slots chan struct{}

	mu      sync.Mutex
	cache   map[cacheKey]*verdict
	flights map[cacheKey]*flight
	// annotations are the audit annotations of the answers in each
	// environment, shared by them (never modified).
	annotations map[string]map[string]string
}

// cacheKey is what a verdict is about: a digest in an environment, and
// with registry evidence the repository it was found in (see unit).
type cacheKey struct{ env, unit string }

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

// flight is one evaluation in progress, shared by the requests that
// want it.
type flight struct {
	done chan struct{}
	// deadline is that of the request that started it.
	deadline time.Time
	// stage is where the evaluation is (stageQueued…), for the reason of
	// a request whose deadline passes while it waits.
	stage atomic.Int32
	v     *verdict
	err   error
	// late says err is the deadline passing.
	late bool
}

// Stages of an evaluation.
const (
	stageQueued int32 = iota // waiting for a slot (Config.Concurrency)
	stageFetch               // fetching the evidence
	stageVerify              // verifying it and evaluating the policy
)

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
	if err := cfg.Modes.validate(func(env string) bool { return cfg.Policies[env] != nil }); err != nil {
		return nil, err
	}
	if cfg.Resolver != nil && len(cfg.Registries) == 0 {
		return nil, errors.New("a tag resolver but no registries to resolve tags at")
	}
	if cfg.Source == nil && cfg.Attached == nil {
		return nil, errors.New("no evidence source")
	}
	if cfg.Attached != nil && len(cfg.Registries) == 0 {
		return nil, errors.New("registry evidence but no registries to read it from")
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
	if cfg.MaxImages <= 0 {
		cfg.MaxImages = DefaultMaxImages
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
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
		slots: make(chan struct{}, cfg.Concurrency)}
	w.annotations = map[string]map[string]string{}
	for env, p := range cfg.Policies {
		w.annotations[env] = map[string]string{"environment": env, "policy": p.Digest()}
	}
	if q, ok := cfg.Quarantine.(SyncedQuarantine); ok {
		w.metrics.watchQuarantine(q, cfg.Now)
	}
	if cfg.Decisions != nil {
		w.rec = newRecorder(cfg.Decisions, recorderConfig{id: cfg.VerifierID, size: cfg.DecisionQueue, timeout: cfg.DecisionTimeout,
			now: cfg.Now, recent: cfg.AllowTTL, remember: cfg.CacheSize}, w.metrics, log)
	}
	w.metrics.watchSlots(w.slots)
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
// (allowed or not) with the request's uid, within Config.Timeout or ctx's
// deadline, whichever comes first.
func (w *Webhook) Review(ctx context.Context, req *Request) *admissionv1.AdmissionResponse {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	resp := w.answer(ctx, req, time.Now(), w.cfg.Timeout)
	resp.AuditAnnotations = maps.Clone(resp.AuditAnnotations)
	return resp
}

// answer is Review under ctx, whose deadline is timeout after start;
// the response's audit annotations are shared with every other answer in
// the same environment (not to be modified).
func (w *Webhook) answer(ctx context.Context, req *Request, start time.Time, timeout time.Duration) *admissionv1.AdmissionResponse {
	resp, reason := w.review(ctx, req, timeout)
	w.observe(start, resp.Allowed, reason)
	return resp
}

// observeMutate counts one answered /mutate request.
func (w *Webhook) observeMutate(start time.Time, allowed bool, reason string) {
	result := "denied"
	if allowed {
		result = "allowed"
	}
	w.metrics.mutations.WithLabelValues(result, reason).Inc()
	w.metrics.mutateLatency.Observe(time.Since(start).Seconds())
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

// review is Review, also returning the reason class of the answer;
// timeout is what ctx's deadline was set from, named when it passes.
func (w *Webhook) review(ctx context.Context, req *Request, timeout time.Duration) (*admissionv1.AdmissionResponse, string) {
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
	if len(images) == 0 {
		return allow(uid), ReasonNoImages
	}
	q := query{env: env, mode: w.cfg.Modes.Of(req.Namespace, env), req: req, timeout: timeout}
	j := w.judge(ctx, q, images)
	if len(j.lines) > 0 {
		if q.mode != ModeEnforce && !j.quarantined {
			return w.relaxed(ctx, q, j), j.reason
		}
		return w.denied(ctx, req, env, j.lines), j.reason
	}
	if w.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations
		w.log.Debug("admission allowed", "uid", clip(req.UID), "namespace", clip(req.Namespace), "kind", clip(req.Kind.Kind), "name", clip(req.Name),
			"environment", env, "policy", w.cfg.Policies[env].Digest(), "images", len(images))
	}
	resp := allow(uid)
	resp.AuditAnnotations = w.annotations[env]
	return resp, ReasonPassed
}

// judgement is what the images of one request come to: no lines when
// every one passed.
type judgement struct {
	lines  []string // one per reason to deny
	reason string   // the reason class counted
	// quarantined: an incident quarantined one of the images, which no
	// mode admits.
	quarantined bool
	// failed are the policy's denials (for warn and audit modes, which
	// record them).
	failed []*policy.Decision
}

// judge decides every image of q.req in q.env.
func (w *Webhook) judge(ctx context.Context, q query, images []Image) judgement {
	var j judgement
	var buf [4]string
	digests := buf[:0] // distinct, in order; a pod names few
	var index map[string]int
	j.reason = ReasonPassed
	for _, im := range images {
		if im.Digest == "" {
			j.lines = append(j.lines, fmt.Sprintf("%s image %q: %s", im.Where, im.Ref, im.Problem))
			j.reason = ReasonImageRef
			continue
		}
		u, problem := w.unit(im)
		if problem != "" && w.cfg.Source == nil {
			j.lines = append(j.lines, fmt.Sprintf("%s image %q: %s", im.Where, im.Ref, problem))
			j.reason = ReasonImageRef
			continue
		}
		digests, index = addDigest(digests, index, u)
	}
	if len(digests) > w.cfg.MaxImages {
		line := fmt.Sprintf("the object names %d distinct image digests, more than the %d custody admission decides in one request (--max-images); nothing was checked",
			len(digests), w.cfg.MaxImages)
		return judgement{lines: append([]string{line}, j.lines...), reason: ReasonTooManyImages}
	}

	var one [1]result
	results := w.decideAll(ctx, q, digests, one[:0])
	for _, im := range images {
		u, _ := w.unit(im)
		i := digestIndex(digests, index, u)
		if i < 0 || results[i].v == nil && results[i].err == nil {
			continue // not by digest, or its result already reported
		}
		r := results[i]
		switch {
		case r.err != nil:
			results[i] = result{}
			j.lines = append(j.lines, fmt.Sprintf("%s image %q: couldn't decide in environment %s: %s", im.Where, im.Ref, q.env, r.err))
			j.reason = worse(j.reason, ReasonUndecided)
		case !r.v.allowed:
			results[i] = result{}
			if r.v.quarantine != "" {
				j.reason = worse(j.reason, ReasonQuarantine)
				j.quarantined = true
			} else {
				j.reason = worse(j.reason, ReasonPolicy)
				if q.mode != ModeEnforce && r.v.decision != nil {
					j.failed = append(j.failed, r.v.decision)
				}
			}
			for _, why := range r.v.reasons {
				j.lines = append(j.lines, fmt.Sprintf("%s image %s: %s", im.Where, shortRef(im.Ref), why))
			}
		}
	}
	return j
}

// denied logs the denial of req in env and returns it.
func (w *Webhook) denied(ctx context.Context, req *Request, env string, lines []string) *admissionv1.AdmissionResponse {
	w.log.InfoContext(ctx, "admission denied", "uid", clip(req.UID), "namespace", clip(req.Namespace), "kind", clip(req.Kind.Kind), "name", clip(req.Name),
		"environment", env, "policy", w.cfg.Policies[env].Digest(), "reasons", len(lines), "first", clip(lines[0]))
	resp := deny(types.UID(req.UID), lines...)
	resp.AuditAnnotations = w.annotations[env]
	return resp
}

// addDigest adds d to the distinct digests list unless it is there,
// index being where each is in list once it is longer than 8 (nil
// before: a pod names few).
func addDigest(list []string, index map[string]int, d string) ([]string, map[string]int) {
	if digestIndex(list, index, d) >= 0 {
		return list, index
	}
	if index == nil && len(list) == 8 {
		index = make(map[string]int, 16)
		for i, x := range list {
			index[x] = i
		}
	}
	if index != nil {
		index[d] = len(list)
	}
	return append(list, d), index
}

// digestIndex is where d is in list (see addDigest), or -1.
func digestIndex(list []string, index map[string]int, d string) int {
	if index == nil {
		return slices.Index(list, d)
	}
	if i, ok := index[d]; ok {
		return i
	}
	return -1
}

// result is the verdict about one digest, or why there is none.
type result struct {
	v   *verdict
	err error
}

// query is what deciding a digest for one request needs of it.
type query struct {
	env  string
	mode Mode // of the request's namespace and environment
	req  *Request
	// timeout is what the request's deadline was set from.
	timeout time.Duration
}

// decideAll decides the digests, Config.Concurrency at a time, and
// returns their results (appended to buf); a digest not decided by ctx's
// deadline has a deadline error.
func (w *Webhook) decideAll(ctx context.Context, q query, digests []string, buf []result) []result {
	if len(digests) == 1 { // the common case: no goroutine on a cache hit
		v, err := w.decide(ctx, q, digests[0])
		return append(buf, result{v, err})
	}
	results := make([]result, len(digests))
	ds := slices.Clone(digests) // so that the caller's (on its stack) is not shared with the workers
	// A job that starts after the deadline leaves its result empty; decide
	// returns once the deadline has passed, so Wait returns then too.
	var g errgroup.Group
	g.SetLimit(w.cfg.Concurrency)
	for i, d := range ds {
		g.Go(func() error {
			if ctx.Err() == nil {
				v, err := w.decide(ctx, q, d)
				results[i] = result{v, err}
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, r := range results {
		if r.v == nil && r.err == nil { // never handed out: the deadline passed first
			results[i].err = w.lateErr(stageQueued, q.timeout)
		}
	}
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

// decide returns the cached verdict about digest in q.env, or makes one. A
// failure to decide (source error, deadline) is returned as an error and
// not cached. Concurrent misses for the same key share one evaluation,
// which runs until the deadline of the request that started it (not
// cancelled with it, so that a caller giving up does not fail the
// others); a request whose deadline is later than that of the evaluation
// it shared, which ran out of time, starts its own.
//
// q.req is the request asking, recorded in the VSA of a decision it
// causes (read only then: a cache hit costs no more for it).
func (w *Webhook) decide(ctx context.Context, q query, unit string) (*verdict, error) {
	digest, _ := splitUnit(unit)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(q.timeout)
	}
	if ctx.Err() != nil {
		return nil, w.lateErr(stageQueued, q.timeout)
	}
	if v, err := w.quarantined(ctx, digest); v != nil || err != nil {
		if v != nil {
			w.metrics.quarantined.Inc()
			w.recordQuarantine(q, digest, v)
		}
		return v, err
	}
	key := cacheKey{q.env, unit}
	for {
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
			f = &flight{done: make(chan struct{}), deadline: deadline}
			w.flights[key] = f
			var res *Resource
			if w.rec != nil {
				res = resourceOf(q.req)
				res.Mode = q.mode
			}
			go w.fly(key, f, res, q.timeout)
		}
		w.mu.Unlock()
		w.metrics.cache.WithLabelValues("miss").Inc()
		select {
		case <-f.done:
			if f.late && f.deadline.Before(deadline) && ctx.Err() == nil {
				continue // another request's evaluation ran out of its time, not ours
			}
			return f.v, f.err
		case <-ctx.Done():
			return nil, w.lateFor(f.stage.Load(), q.timeout, unit)
		}
	}
}

// lateFor is lateErr for unit: a fetch that did not end names the
// registry read with the evidence source, if any.
func (w *Webhook) lateFor(stage int32, timeout time.Duration, unit string) error {
	if _, repo := splitUnit(unit); stage == stageFetch && repo != "" {
		reg, _, _ := strings.Cut(repo, "/")
		return fmt.Errorf("no answer from the evidence sources (registry %s) within the deadline (timeout %s)", reg, timeout)
	}
	return w.lateErr(stage, timeout)
}

// lateErr is the reason of a digest not decided by the deadline, set
// from timeout, when its evaluation was at stage.
func (w *Webhook) lateErr(stage int32, timeout time.Duration) error {
	switch stage {
	case stageFetch:
		return fmt.Errorf("no answer from the evidence source within the deadline (timeout %s)", timeout)
	case stageVerify:
		return fmt.Errorf("evidence not verified and judged within the deadline (timeout %s)", timeout)
	}
	return fmt.Errorf("not evaluated within the deadline (timeout %s): all %d evaluation slots (--concurrency) were busy", timeout, w.cfg.Concurrency)
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

// recordQuarantine records the quarantine denial v of digest in q.env (the
// recorder skips it while the identical denial's record is recent).
func (w *Webhook) recordQuarantine(q query, digest string, v *verdict) {
	if w.rec == nil {
		return
	}
	env := q.env
	d := &policy.Decision{Environment: env, PolicyDigest: w.cfg.Policies[env].Digest(), Artifact: digest, Time: w.cfg.Now().UTC(),
		Failures: []policy.Failure{{Requirement: "quarantine", Message: v.reasons[0],
			Fix: "deploy an artifact the incident does not affect ('custody incident show " + v.quarantine + "')"}},
		Passed: []string{}}
	res := resourceOf(q.req)
	res.Mode = q.mode
	w.rec.enqueue(d, res, true)
}

// fly runs the evaluation f until its deadline. res is the request that
// asked (nil when nothing is recorded), read before: the request's bytes
// are the handler's and reused after it answers.
func (w *Webhook) fly(key cacheKey, f *flight, res *Resource, timeout time.Duration) {
	ctx, cancel := context.WithDeadline(context.Background(), f.deadline)
	defer cancel()
	v, err := w.evaluate(ctx, key.env, key.unit, f, timeout)
	f.v, f.err = v, err
	f.late = err != nil && ctx.Err() != nil
	w.mu.Lock()
	delete(w.flights, key)
	if err == nil {
		w.store(key, v)
	}
	w.mu.Unlock()
	// Queued before the waiters are answered (enqueue never blocks), so
	// that a Close after the answer finds the decision in the queue.
	if err == nil && w.rec != nil && v.decision != nil {
		w.rec.enqueue(v.decision, res, true)
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

// evaluate takes an evaluation slot, fetches, verifies and judges the
// evidence about digest, recording its stage in f. An error after ctx's
// deadline is the deadline's, naming timeout.
func (w *Webhook) evaluate(ctx context.Context, env, unit string, f *flight, timeout time.Duration) (*verdict, error) {
	digest, repo := splitUnit(unit)
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-ctx.Done():
		w.metrics.evidenceErrors.WithLabelValues("busy").Inc()
		return nil, w.lateErr(stageQueued, timeout)
	}
	f.stage.Store(stageFetch)
	start := time.Now()
	bundles, err := w.bundles(ctx, digest, repo)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			w.metrics.evidenceErrors.WithLabelValues("timeout").Inc()
			return nil, w.lateFor(stageFetch, timeout, unit)
		case errors.Is(err, client.ErrUnreachable):
			w.metrics.evidenceErrors.WithLabelValues("unreachable").Inc()
			return nil, fmt.Errorf("couldn't fetch evidence: %w", err)
		}
		w.metrics.evidenceErrors.WithLabelValues("fetch").Inc()
		return nil, fmt.Errorf("couldn't fetch evidence: %w", err)
	}
	f.stage.Store(stageVerify)
	fetched := time.Since(start)
	ev, rejected, err := gate.Gather(ctx, digest, gate.JSONs(bundles), w.cfg.Trust)
	if err != nil {
		if ctx.Err() != nil {
			w.metrics.evidenceErrors.WithLabelValues("timeout").Inc()
			return nil, w.lateErr(stageVerify, timeout)
		}
		w.metrics.evidenceErrors.WithLabelValues("verify").Inc()
		return nil, fmt.Errorf("couldn't verify evidence: %w", err)
	}
	p := w.cfg.Policies[env]
	now := w.cfg.Now()
	verified := time.Since(start) - fetched
	d, err := p.Evaluate(ctx, ev, now)
	if err != nil {
		if ctx.Err() != nil {
			return nil, w.lateErr(stageVerify, timeout)
		}
		return nil, fmt.Errorf("couldn't evaluate policy: %w", err)
	}
	p.Measure(d, policy.StepFetch, fetched)
	p.Measure(d, policy.StepVerify, verified)
	p.Measure(d, policy.StepTotal, time.Since(start))
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
	mux.HandleFunc("POST /validate", func(rw http.ResponseWriter, r *http.Request) { w.serveReview(rw, r, false) })
	if w.cfg.Resolver != nil {
		mux.HandleFunc("POST /mutate", func(rw http.ResponseWriter, r *http.Request) { w.serveReview(rw, r, true) })
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// answerMutate is Mutate under ctx, whose deadline is timeout after start,
// counted.
func (w *Webhook) answerMutate(ctx context.Context, req *Request, start time.Time, timeout time.Duration) *admissionv1.AdmissionResponse {
	resp, reason := w.mutate(ctx, req, timeout)
	w.observeMutate(start, resp.Allowed, reason)
	return resp
}

// serveReview reads an AdmissionReview and answers it: /mutate's answer
// when mutating, else /validate's.
func (w *Webhook) serveReview(rw http.ResponseWriter, r *http.Request, mutating bool) {
	// The deadline starts now: reading and parsing the review count.
	start := time.Now()
	timeout := w.requestTimeout(r)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	// The server's ResponseWriters can (as http.ResponseController
	// finds, without its allocation); httptest's cannot.
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(start.Add(timeout))
	}
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
		if mutating {
			w.observeMutate(start, false, ReasonMalformed)
		} else {
			w.observe(start, false, ReasonMalformed)
		}
	} else if mutating {
		resp = w.answerMutate(ctx, req, start, timeout)
	} else {
		resp = w.answer(ctx, req, start, timeout)
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
