package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/redflags"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/signer"
)

// RedFlagsConfig configures the red flags the server computes for every
// provenance it indexes (package redflags, docs/redflags.md). The zero
// value computes them with redflags' defaults and sends them nowhere.
type RedFlagsConfig struct {
	// Webhook, an http(s) URL, receives a JSON POST (redflags.Notice,
	// Slack-compatible) for every build with red flags. It may hold a
	// secret: it is never logged. Default none.
	Webhook string
	// ReleaseRefs are the refs (path.Match globs) whose builds are
	// releases. Default redflags.DefaultReleaseRefs.
	ReleaseRefs []string
	// Window is how many earlier builds of a lineage are compared.
	// Default redflags.DefaultWindow.
	Window int
}

// Red flags are computed off the write path: a write that indexes new
// verified provenance queues its evidence ID (at most redFlagQueue wait;
// beyond, the build gets none and the drop is logged and counted), and
// one goroutine computes, signs and logs the flags in the order builds
// were indexed. A build whose flags could not be computed or signed has
// no red flags statement; policies that act on red flags deny it
// (docs/redflags.md).
const (
	redFlagQueue   = 4096
	redFlagTimeout = time.Minute
	// maxRedFlagSBOMs bounds the SBOMs about an artifact that are read.
	maxRedFlagSBOMs = 8
	// redFlagCacheSize is how many parsed earlier builds are kept: the
	// windows of about 64 busy lineages.
	redFlagCacheSize = 4096
	// redFlagCatchUp is how many of the newest provenance records the
	// start-up catch-up looks at.
	redFlagCatchUp = 256
)

// redFlagger computes, signs and logs red flags (see above).
type redFlagger struct {
	s     *Server
	opts  redflags.Options
	queue chan int64
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	hook  *redflags.Webhook
	// auditKeyID is the key ID of the audit key, which signs red flags.
	auditKeyID string

	idle    sync.Cond // signalled when pending reaches 0
	mu      sync.Mutex
	pending int

	flags    *prometheus.CounterVec // by kind (restricted)
	builds   *prometheus.CounterVec // by result: flagged, clean (restricted)
	failures *prometheus.CounterVec // by stage: queue, compute, sign
	webhook  *prometheus.CounterVec // by result
}

// newRedFlagger makes the red flagger of s; start starts it.
func newRedFlagger(s *Server, cfg RedFlagsConfig) (*redFlagger, error) {
	f := &redFlagger{s: s, queue: make(chan int64, redFlagQueue), stop: make(chan struct{}),
		opts: redflags.Options{Window: cfg.Window, ReleaseRefs: cfg.ReleaseRefs, ComputedBy: s.cfg.PublicURL,
			Cache: redflags.NewCache(redFlagCacheSize)},
		flags: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_redflags_total", Help: "Red flags found in builds the server indexed, by kind.",
		}, []string{"kind"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_redflags_builds_total", Help: "Builds whose red flags were computed and signed, by result (flagged, clean).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_redflags_failures_total", Help: "Builds left without a red flags statement, by stage (queue: queue full or server stopping, compute, sign).",
		}, []string{"stage"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_redflags_webhook_total", Help: "Red flags webhook notices, by result (sent, failed, dropped).",
		}, []string{"result"}),
	}
	f.idle.L = &f.mu
	f.auditKeyID = signer.KeyID(s.auditKey.Public())
	for _, k := range redflags.Kinds {
		f.flags.WithLabelValues(k)
	}
	for _, r := range []string{"flagged", "clean"} {
		f.builds.WithLabelValues(r)
	}
	for _, st := range []string{"queue", "compute", "sign"} {
		f.failures.WithLabelValues(st)
	}
	s.metrics.restricted.MustRegister(f.flags, f.builds)
	s.metrics.reg.MustRegister(f.failures)
	if cfg.Webhook != "" {
		var err error
		if f.hook, err = redflags.NewWebhook(cfg.Webhook, s.logger, func(r string) { f.webhook.WithLabelValues(r).Inc() }); err != nil {
			return nil, err
		}
		s.metrics.reg.MustRegister(f.webhook)
	}
	return f, nil
}

// start starts the goroutine that works through the queue.
func (f *redFlagger) start() {
	f.wg.Add(1)
	go f.run()
}

// close stops the goroutine once the build it works on is done; builds
// still queued get no red flags (counted as stage "queue").
func (f *redFlagger) close() {
	f.once.Do(func() { close(f.stop) })
	f.wg.Wait()
	for {
		select {
		case <-f.queue:
			f.failures.WithLabelValues("queue").Inc()
			f.done()
		default:
			if f.hook != nil {
				f.hook.Close()
			}
			return
		}
	}
}

// indexed is called when a write indexed ev as record id: new verified
// provenance is queued for red flags without waiting.
func (f *redFlagger) indexed(ev *store.Evidence, id int64, existed bool) {
	if existed || !Attributed(ev) {
		return
	}
	f.add(id, ev.PredicateType)
}

// signed is called when the signing service signed and indexed a
// statement of predicateType as record id (a builder key's: verified).
func (f *redFlagger) signed(id int64, predicateType string) { f.add(id, predicateType) }

// add queues provenance record id.
func (f *redFlagger) add(id int64, predicateType string) {
	if f == nil || (predicateType != attest.PredicateSLSAv1 && predicateType != attest.PredicateSLSAv02) {
		return
	}
	f.mu.Lock()
	f.pending++
	f.mu.Unlock()
	select {
	case f.queue <- id:
	default:
		f.failures.WithLabelValues("queue").Inc()
		f.s.logger.Error("red flags queue full: build left without red flags", "id", id)
		f.done()
	}
}

func (f *redFlagger) done() {
	f.mu.Lock()
	f.pending--
	if f.pending <= 0 {
		f.idle.Broadcast()
	}
	f.mu.Unlock()
}

// WaitRedFlags waits until every build queued for red flags so far has
// its red flags signed and indexed, or failed (tests use it to count log
// entries; custody serve never needs to).
func (s *Server) WaitRedFlags() {
	f := s.redFlags
	f.mu.Lock()
	for f.pending > 0 {
		f.idle.Wait()
	}
	f.mu.Unlock()
}

func (f *redFlagger) run() {
	defer f.wg.Done()
	for {
		select {
		case <-f.stop:
			return
		case id := <-f.queue:
			f.one(id)
			f.done()
		}
	}
}

// one computes, signs and logs the red flags of the provenance record id.
func (f *redFlagger) one(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), redFlagTimeout)
	defer cancel()
	start := time.Now()
	results, err := f.compute(ctx, id)
	if err != nil {
		f.failures.WithLabelValues("compute").Inc()
		f.s.logger.Error("couldn't compute red flags: build left without red flags", "id", id, "err", err)
		return
	}
	for _, r := range results {
		if done, err := f.signedBefore(ctx, r); err != nil || done {
			if err != nil {
				f.failures.WithLabelValues("compute").Inc()
				f.s.logger.Error("couldn't look for earlier red flags: build left without red flags", "id", id, "err", err)
			}
			continue
		}
		rid, logIndex, err := f.sign(ctx, r)
		if err != nil {
			f.failures.WithLabelValues("sign").Inc()
			f.s.logger.Error("couldn't sign red flags: build left without red flags", "id", id, "subject", r.Subject.Name, "err", err)
			continue
		}
		p := r.Predicate
		kinds := make([]string, 0, len(p.Flags))
		for _, fl := range p.Flags {
			f.flags.WithLabelValues(fl.Kind).Inc()
			if !slices.Contains(kinds, fl.Kind) {
				kinds = append(kinds, fl.Kind)
			}
		}
		result := "clean"
		if len(p.Flags) > 0 {
			result = "flagged"
			if f.hook != nil {
				f.hook.Notify(redflags.NewNotice(f.s.cfg.PublicURL, r.Subject, p, rid, logIndex))
			}
		}
		f.builds.WithLabelValues(result).Inc()
		f.s.logger.Info("red flags", "provenance", id, "subject", r.Subject.Name, "flags", len(p.Flags), "kinds", kinds,
			"compared", p.Lineage.Compared, "id", rid, "log_index", logIndex, "took", time.Since(start).Round(time.Millisecond))
	}
}

// signedBefore reports whether the index holds a red flags statement
// about r's artifact and build signed by the audit key already (a build
// queued again after a restart, or by the start-up catch-up).
func (f *redFlagger) signedBefore(ctx context.Context, r redflags.Result) (bool, error) {
	h := r.Subject.Digest["sha256"]
	if h == "" {
		return false, nil
	}
	q := store.Query{Digest: "sha256:" + h, PredicateType: attest.PredicateRedFlags, SignerKeyID: f.auditKeyID, Limit: store.MaxLimit}
	for {
		rows, err := f.s.index.Search(ctx, q)
		if err != nil {
			return false, err
		}
		for _, e := range rows {
			if p, err := attest.ParseRedFlags(attributedPredicate(e)); err == nil && p.Build.Bundle == r.Predicate.Build.Bundle {
				return true, nil
			}
		}
		if len(rows) < q.Limit {
			return false, nil
		}
		q.AfterID = rows[len(rows)-1].ID
	}
}

// catchUp queues the newest provenance records (at most redFlagCatchUp),
// oldest first: those whose red flags a crash, a full queue or a stop
// kept from being signed get them now; the rest are skipped
// (signedBefore).
func (f *redFlagger) catchUp(ctx context.Context) error {
	var ids []int64
	for _, pt := range []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02} {
		rows, err := f.s.index.Search(ctx, store.Query{PredicateType: pt, Newest: true, Limit: redFlagCatchUp})
		if err != nil {
			return fmt.Errorf("couldn't search provenance for red flags: %w", err)
		}
		for _, e := range rows {
			if Attributed(e) {
				ids = append(ids, e.ID)
			}
		}
	}
	slices.Sort(ids)
	for _, id := range ids[max(0, len(ids)-redFlagCatchUp):] {
		f.add(id, attest.PredicateSLSAv1)
	}
	return nil
}

// compute reads the provenance record id and the SBOMs about its
// artifact and compares it with its lineage.
func (f *redFlagger) compute(ctx context.Context, id int64) ([]redflags.Result, error) {
	e, err := f.s.index.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("couldn't read provenance: %w", err)
	}
	var sboms [][]byte
	if len(e.Subjects) > 0 {
		sub := e.Subjects[0]
		if h := sub.Digests["sha256"]; h != "" {
			rows, err := f.s.index.Search(ctx, store.Query{Digest: "sha256:" + h, PredicateType: attest.PredicateCycloneDX, Limit: maxRedFlagSBOMs})
			if err != nil {
				return nil, fmt.Errorf("couldn't search SBOMs: %w", err)
			}
			for _, r := range rows {
				if p := attributedPredicate(r); p != nil {
					sboms = append(sboms, p)
				}
			}
		}
	}
	return redflags.Compute(ctx, f.s.index, e, sboms, f.opts)
}

// attributedPredicate returns the predicate of a verified record's
// statement, or nil.
func attributedPredicate(e *store.Evidence) []byte {
	if !Attributed(e) {
		return nil
	}
	var b struct {
		DSSE struct {
			Payload []byte `json:"payload"`
		} `json:"dsseEnvelope"`
	}
	if json.Unmarshal(e.Bundle, &b) != nil {
		return nil
	}
	st, err := attest.ParseStatement(b.DSSE.Payload)
	if err != nil {
		return nil
	}
	return st.Predicate
}

// sign signs the red flags of one subject with the audit key, logs,
// timestamps and indexes them as the signing service does (journalled).
func (f *redFlagger) sign(ctx context.Context, r redflags.Result) (id, logIndex int64, err error) {
	stmt, err := attest.NewStatement([]attest.Subject{r.Subject}, attest.PredicateRedFlags, r.Predicate)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't make the statement: %w", err)
	}
	raw, err := stmt.Marshal()
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't encode the statement: %w", err)
	}
	_, tle, id, err := f.s.sign(ctx, f.s.auditKey, raw, stmt, nil)
	if err != nil {
		return 0, 0, err
	}
	return id, tle.GetLogIndex(), nil
}
