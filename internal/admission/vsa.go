package admission

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
)

// DefaultVerifierID is the verifier.id of the webhook's VSAs unless
// Config.VerifierID says otherwise.
const DefaultVerifierID = "https://custody.dev/verifiers/admission@v1"

// Defaults of the decision queue.
const (
	DefaultDecisionQueue   = 1024
	DefaultDecisionTimeout = 30 * time.Second
	decisionWorkers        = 2
)

// Recorder signs one decision and stores it where auditors find it: the
// log of a custody server, or a directory of bundles. vsa is an unsigned
// in-toto Statement v1 (JSON) with a SLSA Verification Summary Attestation
// v1 predicate about digest in environment env. Record must honour ctx's
// deadline; an error counts as a failed write (it is logged, not retried).
type Recorder interface {
	Record(ctx context.Context, env, digest string, vsa []byte) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, env, digest string, vsa []byte) error

// Record calls f.
func (f RecorderFunc) Record(ctx context.Context, env, digest string, vsa []byte) error {
	return f(ctx, env, digest, vsa)
}

// Resource is the Kubernetes object whose admission request made a
// decision, as the VSA records it under predicate.custody.admission.
type Resource struct {
	// UID is the AdmissionRequest's uid (the API server's audit events
	// carry it as the webhook's request id).
	UID string `json:"uid"`
	// Namespace, Kind ("GROUP/VERSION/KIND", "v1/Pod" for the core group)
	// and Name of the object; Name is empty for an object created with
	// generateName (GenerateName is set instead).
	Namespace    string `json:"namespace"`
	Kind         string `json:"kind"`
	Name         string `json:"name,omitempty"`
	GenerateName string `json:"generateName,omitempty"`
	// Operation is CREATE or UPDATE.
	Operation string `json:"operation"`
	// User is the user name the API server authenticated for the request.
	User string `json:"user,omitempty"`
	// Mode is the admission mode of the request's namespace (see Mode): a
	// FAILED decision recorded in warn or audit mode was admitted, unless
	// an incident quarantined the image (denied in every mode).
	Mode Mode `json:"mode,omitempty"`
}

// resourceOf is the request as its VSA records it, each field cut to
// maxLogField bytes (saying so): the API server sends far shorter ones,
// and a decision waiting in the queue must not hold megabytes.
func resourceOf(req *Request) *Resource {
	r := &Resource{UID: req.UID, Namespace: req.Namespace, Kind: gvk(req.Kind.Group, req.Kind.Version, req.Kind.Kind),
		Name: req.Name, Operation: req.Operation, User: req.User}
	defer func() {
		for _, f := range []*string{&r.UID, &r.Namespace, &r.Kind, &r.Name, &r.GenerateName, &r.Operation, &r.User} {
			*f = clip(*f)
		}
	}()
	if r.Name == "" {
		// The API server leaves the request's name empty when the object
		// has only a generateName (and so do some clients of the webhook).
		var meta struct {
			Metadata struct {
				Name         string `json:"name"`
				GenerateName string `json:"generateName"`
			} `json:"metadata"`
		}
		if json.Unmarshal(req.Object, &meta) == nil {
			r.Name, r.GenerateName = meta.Metadata.Name, meta.Metadata.GenerateName
		}
	}
	return r
}

// vsaExt is policy.VSADecisionExt plus the admission request that made the
// decision; vsaPredicate replaces the predicate's "custody" member with it.
type vsaExt struct {
	policy.VSADecisionExt
	Admission *Resource `json:"admission"`
}

type vsaPredicate struct {
	attest.VSAPredicate
	Custody *vsaExt `json:"custody"`
}

// VSA returns the unsigned statement that records d as decided for the
// admission request r: d.VSA(verifierID) (subject the image digest,
// resourceUri the environment, policy.digest the policy version) with r
// under predicate.custody.admission.
func VSA(d *policy.Decision, verifierID string, r *Resource) ([]byte, error) {
	b, err := d.VSA(verifierID)
	if err != nil {
		return nil, err
	}
	st, err := attest.ParseStatement(b)
	if err != nil {
		return nil, err
	}
	var pred vsaPredicate
	if err := json.Unmarshal(st.Predicate, &pred); err != nil {
		return nil, fmt.Errorf("couldn't read VSA predicate: %w", err)
	}
	if pred.Custody == nil {
		pred.Custody = &vsaExt{VSADecisionExt: policy.VSADecisionExt{Environment: d.Environment}}
	}
	pred.Custody.Admission = r
	if st.Predicate, err = json.Marshal(&pred); err != nil {
		return nil, fmt.Errorf("couldn't marshal VSA predicate: %w", err)
	}
	return st.Marshal()
}

// record is one decision waiting to be written.
type record struct {
	d   *policy.Decision
	res *Resource
	fp  fingerprint
}

// fingerprint identifies what a decision decided, whenever and for
// whichever request: its digest, environment, policy version, evidence
// (the bundles' hashes), verdict, and which requirements failed with
// what fix (a quarantine's names the incident). Given the policy and the
// evidence, only the time of the decision can change it, and the texts
// that carry the time (an age in a passed check or a failure's message)
// are left out, so that the same decision a minute later is the same.
type fingerprint [sha256.Size]byte

func fingerprintOf(d *policy.Decision, mode Mode) fingerprint {
	h := sha256.New()
	field := func(s string) { // length-prefixed, so fields cannot run into each other
		binary.Write(h, binary.BigEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	field(string(mode))
	field(d.Environment)
	field(d.Artifact)
	field(d.PolicyDigest)
	field(strconv.FormatBool(d.Allowed))
	binary.Write(h, binary.BigEndian, uint64(len(d.Inputs)))
	for _, in := range d.Inputs {
		field(in)
	}
	binary.Write(h, binary.BigEndian, uint64(len(d.Failures)))
	for _, f := range d.Failures {
		field(f.Requirement)
		field(f.Fix)
	}
	var fp fingerprint
	h.Sum(fp[:0])
	return fp
}

// recorder writes decisions from a bounded queue, so that a slow or
// unreachable log never delays an answer: a decision that finds the queue
// full is dropped (and counted), not waited for. A decision identical to
// one recorded less than recent before, or waiting to be, is skipped (and
// counted).
type recorder struct {
	rec   Recorder
	cfg   recorderConfig
	m     *Metrics
	log   logger
	queue chan record
	wg    sync.WaitGroup
	once  sync.Once
	stop  chan struct{}

	mu sync.Mutex
	// seen is when each decision was recorded (its time), by fingerprint;
	// the zero time while it waits to be written.
	seen map[fingerprint]time.Time
}

// recorderConfig is what a recorder is given of Config.
type recorderConfig struct {
	id       string        // VerifierID
	size     int           // DecisionQueue
	timeout  time.Duration // DecisionTimeout
	now      func() time.Time
	recent   time.Duration // AllowTTL
	remember int           // the most fingerprints kept (CacheSize)
}

// logger is the subset of *slog.Logger the recorder uses.
type logger interface {
	Warn(msg string, args ...any)
	Debug(msg string, args ...any)
}

func newRecorder(rec Recorder, cfg recorderConfig, m *Metrics, log logger) *recorder {
	r := &recorder{rec: rec, cfg: cfg, m: m, log: log, queue: make(chan record, cfg.size), stop: make(chan struct{}),
		seen: map[fingerprint]time.Time{}}
	for range decisionWorkers {
		r.wg.Go(r.work)
	}
	return r
}

// enqueue queues d, decided for the request res, for writing, or skips
// it when an identical decision in the same mode was recorded recently or
// waits to be (counted as a duplicate when countDuplicate), or drops it
// when the queue is full or closed.
func (r *recorder) enqueue(d *policy.Decision, res *Resource, countDuplicate bool) {
	var mode Mode
	if res != nil {
		mode = res.Mode
	}
	fp := fingerprintOf(d, mode)
	if !r.claim(fp) {
		if countDuplicate {
			r.m.vsaWrites.WithLabelValues("duplicate").Inc()
		}
		return
	}
	select {
	case <-r.stop:
	default:
		select {
		case r.queue <- record{d, res, fp}:
			return
		default:
		}
	}
	r.settle(fp, time.Time{})
	r.m.vsaWrites.WithLabelValues("dropped").Inc()
	r.log.Warn("admission decision not recorded: the VSA queue is full", "environment", d.Environment, "digest", d.Artifact,
		"allowed", d.Allowed, "queue", cap(r.queue))
}

// claim marks fp as waiting to be written, unless it is already or was
// recorded less than cfg.recent ago; it says whether it did.
func (r *recorder) claim(fp fingerprint) bool {
	now := r.cfg.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.seen[fp]; ok && (at.IsZero() || now.Sub(at) < r.cfg.recent) {
		return false
	}
	if len(r.seen) >= r.cfg.remember {
		for k, at := range r.seen {
			if !at.IsZero() && now.Sub(at) >= r.cfg.recent {
				delete(r.seen, k)
			}
		}
		// Still full: forget arbitrary ones (at worst, one is recorded twice).
		for k := range r.seen {
			if len(r.seen) < r.cfg.remember {
				break
			}
			delete(r.seen, k)
		}
	}
	r.seen[fp] = time.Time{}
	return true
}

// settle records that fp was written, deciding at at, or forgets it
// (at zero: not written, so the next identical decision is recorded).
func (r *recorder) settle(fp fingerprint, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at.IsZero() {
		delete(r.seen, fp)
		return
	}
	r.seen[fp] = at
}

func (r *recorder) work() {
	for {
		select {
		case rec := <-r.queue:
			r.write(rec)
		case <-r.stop:
			// Drain what was queued before Close, then stop.
			for {
				select {
				case rec := <-r.queue:
					r.write(rec)
				default:
					return
				}
			}
		}
	}
}

func (r *recorder) write(rec record) {
	vsa, err := VSA(rec.d, r.cfg.id, rec.res)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.timeout)
		err = r.rec.Record(ctx, rec.d.Environment, rec.d.Artifact, vsa)
		cancel()
	}
	if err != nil {
		r.settle(rec.fp, time.Time{})
		r.m.vsaWrites.WithLabelValues("failed").Inc()
		r.log.Warn("admission decision not recorded", "environment", rec.d.Environment, "digest", rec.d.Artifact,
			"allowed", rec.d.Allowed, "err", err.Error())
		return
	}
	r.settle(rec.fp, rec.d.Time)
	r.m.vsaWrites.WithLabelValues("ok").Inc()
	r.log.Debug("admission decision recorded", "environment", rec.d.Environment, "digest", rec.d.Artifact, "allowed", rec.d.Allowed)
}

// close stops taking decisions and waits until the queued ones are written
// or ctx ends.
func (r *recorder) close(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d decision(s) still unwritten: %w", len(r.queue), ctx.Err())
	}
}
