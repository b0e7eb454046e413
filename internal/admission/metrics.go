package admission

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-dev/custody/internal/incident"
)

// Reason classes of custody_admission_decisions_total: why a request was
// allowed or denied, one per request (the first that applies, in this
// order for denials).
const (
	ReasonMalformed = "malformed" // the review or its object could not be read
	ReasonOperation = "operation" // an operation custody does not decide (denied) or runs no image (allowed)
	ReasonNamespace = "namespace" // the namespace has no environment
	// ReasonTooManyImages: the object names more distinct image digests
	// than Config.MaxImages.
	ReasonTooManyImages = "too_many_images"
	ReasonImageRef      = "image_ref"  // an image not referenced by sha256 digest
	ReasonUndecided     = "undecided"  // evidence or quarantine could not be read in time
	ReasonQuarantine    = "quarantine" // an incident quarantined a digest
	ReasonPolicy        = "policy"     // the evidence did not satisfy the policy
	ReasonPassed        = "passed"     // every digest's evidence satisfied the policy
	ReasonNoImages      = "no_images"  // the object runs no image
)

// Metrics are the webhook's Prometheus metrics, in a registry of its own
// served at GET /metrics.
type Metrics struct {
	reg            *prometheus.Registry
	decisions      *prometheus.CounterVec
	latency        prometheus.Histogram
	cache          *prometheus.CounterVec
	evidenceErrors *prometheus.CounterVec
	vsaWrites      *prometheus.CounterVec
	quarantined    prometheus.Counter
	wouldDeny      *prometheus.CounterVec
	mutations      *prometheus.CounterVec
	mutateLatency  prometheus.Histogram
}

func newMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_admission_decisions_total", Help: "Admission requests answered, by result (allowed, denied) and reason class.",
		}, []string{"result", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_admission_decision_seconds", Help: "Time to decide one admission request, evidence fetching included.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 15), // 0.25 ms … 4 s
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_admission_cache_lookups_total", Help: "Decisions about a digest in an environment looked up in the cache, by result (hit, miss).",
		}, []string{"result"}),
		evidenceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_admission_evidence_errors_total", Help: "Evaluations that could not fetch or verify evidence, by cause (timeout, unreachable, fetch, verify, busy: no evaluation slot before the deadline).",
		}, []string{"cause"}),
		vsaWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_admission_vsa_writes_total", Help: "Decisions recorded as signed VSAs, by result (ok, failed, dropped: the queue was full, duplicate: an identical decision was recorded recently).",
		}, []string{"result"}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custody_admission_quarantine_denials_total", Help: "Digests denied because an incident quarantined them.",
		}),
		wouldDeny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_admission_would_deny_total", Help: "Requests the policy denies that were admitted because their namespace or environment is in warn or audit mode, by mode, environment and reason class.",
		}, []string{"mode", "environment", "reason"}),
	}
	m.mutations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custody_admission_mutations_total", Help: "/mutate requests answered, by result (allowed, denied) and reason class (mutated: tags pinned, no_images: nothing to pin, image_ref: a reference that cannot be pinned, undecided: a registry that did not resolve a tag in time).",
	}, []string{"result", "reason"})
	m.mutateLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "custody_admission_mutate_seconds", Help: "Time to answer one /mutate request, tag resolution included.",
		Buckets: prometheus.ExponentialBuckets(0.00025, 2, 15),
	})
	// Zero series, so that rates and alerts see them before the first event.
	for _, r := range []string{"ok", "failed", "dropped", "duplicate"} {
		m.vsaWrites.WithLabelValues(r)
	}
	for _, r := range []string{"hit", "miss"} {
		m.cache.WithLabelValues(r)
	}
	m.reg.MustRegister(m.decisions, m.latency, m.cache, m.evidenceErrors, m.vsaWrites, m.quarantined, m.wouldDeny, m.mutations, m.mutateLatency)
	return m
}

// watchSlots registers the gauge of evaluations in progress: slots holds
// a token per evaluation.
func (m *Metrics) watchSlots(slots chan struct{}) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custody_admission_evaluations_in_progress",
		Help: "Evaluations (evidence fetch, verification, policy) in progress; at most --concurrency, beyond which they wait.",
	}, func() float64 { return float64(len(slots)) }))
}

// SyncedQuarantine is a quarantine answered from a local copy that is
// synced in the background (incident.Watcher). When Config.Quarantine is
// one, the metrics add custody_admission_quarantine_sync_age_seconds (since
// the last successful sync started; +Inf before the first),
// custody_admission_quarantine_sync_errors_total and
// custody_admission_quarantined_artifacts.
type SyncedQuarantine interface {
	Status() incident.WatchStatus
}

// watchQuarantine registers the metrics of a synced quarantine.
func (m *Metrics) watchQuarantine(q SyncedQuarantine, now func() time.Time) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "custody_admission_quarantine_sync_age_seconds",
			Help: "Seconds since the last successful sync of the incident quarantine started (+Inf before the first); past the maximum staleness every request is denied.",
		}, func() float64 {
			last := q.Status().LastSync
			if last.IsZero() {
				return math.Inf(1)
			}
			return now().Sub(last).Seconds()
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "custody_admission_quarantine_sync_errors_total",
			Help: "Syncs of the incident quarantine that failed (the server could not be read, or answered something malformed).",
		}, func() float64 { return float64(q.Status().SyncErrors) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "custody_admission_quarantined_artifacts",
			Help: "Artifacts in the webhook's copy of the incident quarantine.",
		}, func() float64 { return float64(q.Status().Artifacts) }),
	)
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
