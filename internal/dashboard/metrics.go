package dashboard

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/store"
)

const (
	recorderHours   = 48
	latencySamples  = 4096
	statsTTL        = 30 * time.Second
	statsMaxRecords = 500
)

// recorder keeps the dashboard's own verification outcomes: failures by
// reason per hour, and a window of verification latencies.
type recorder struct {
	mu       sync.Mutex
	failures map[int64]map[string]int // hour (unix/3600) → reason → count
	lat      []time.Duration
	next     int
}

func newRecorder() *recorder { return &recorder{failures: map[int64]map[string]int{}} }

// reasonClass shortens a verification error to its class: the text before
// the first colon, at most 60 bytes.
func reasonClass(reason string) string {
	if i := strings.Index(reason, ":"); i > 0 {
		reason = reason[:i]
	}
	if len(reason) > 60 {
		reason = reason[:60]
	}
	return reason
}

func (r *recorder) failure(now time.Time, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := now.Unix() / 3600
	if r.failures[h] == nil {
		r.failures[h] = map[string]int{}
		for k := range r.failures {
			if k <= h-recorderHours {
				delete(r.failures, k)
			}
		}
	}
	r.failures[h][reasonClass(reason)]++
}

func (r *recorder) latency(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lat) < latencySamples {
		r.lat = append(r.lat, d)
		return
	}
	r.lat[r.next] = d
	r.next = (r.next + 1) % latencySamples
}

// percentiles returns the 50th, 90th and 99th percentile latencies and the
// sample count.
func (r *recorder) percentiles() ([3]time.Duration, int) {
	r.mu.Lock()
	s := append([]time.Duration(nil), r.lat...)
	r.mu.Unlock()
	var out [3]time.Duration
	if len(s) == 0 {
		return out, 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	for i, p := range []float64{0.5, 0.9, 0.99} {
		out[i] = s[int(math.Ceil(p*float64(len(s))))-1]
	}
	return out, len(s)
}

// stats are figures computed from the index, verified.
type stats struct {
	at             time.Time
	rebuilds       int
	rebuildMatched int
	waits          []time.Duration // approval wait: approval signed − provenance signed
	decisions      *decisionFigures
}

type statsCache struct {
	d  *Dashboard
	mu sync.Mutex
	s  *stats
}

func (c *statsCache) get(ctx context.Context) (*stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s != nil && c.d.cfg.Now().Sub(c.s.at) < statsTTL {
		return c.s, nil
	}
	s, err := c.d.computeStats(ctx)
	if err != nil {
		return nil, err
	}
	c.s = s
	return s, nil
}

// newest returns the newest (at most statsMaxRecords) records of a
// predicate type.
func (d *Dashboard) newest(ctx context.Context, predicateType string) ([]*store.Evidence, error) {
	var out []*store.Evidence
	var after int64
	for {
		page, err := d.cfg.Index.Search(ctx, store.Query{PredicateType: predicateType, AfterID: after, Limit: store.MaxLimit})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(out) > statsMaxRecords {
			out = out[len(out)-statsMaxRecords:]
		}
		if len(page) < store.MaxLimit {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// bySubject groups records by the sha256 digest of their first subject.
func bySubject(recs []*store.Evidence) map[string][][]byte {
	m := map[string][][]byte{}
	for _, r := range recs {
		if len(r.Subjects) == 0 || r.Subjects[0].Digests["sha256"] == "" {
			continue
		}
		dg := "sha256:" + r.Subjects[0].Digests["sha256"]
		m[dg] = append(m[dg], r.Bundle)
	}
	return m
}

func (d *Dashboard) computeStats(ctx context.Context) (*stats, error) {
	s := &stats{at: d.cfg.Now()}
	tm, err := d.cfg.Trust()
	if err != nil {
		return nil, err
	}
	rebuilds, err := d.newest(ctx, attest.PredicateRebuild)
	if err != nil {
		return nil, err
	}
	for dg, bs := range bySubject(rebuilds) {
		ev, _, err := gate.Gather(ctx, dg, bs, tm)
		if err != nil {
			continue
		}
		for _, rb := range ev.Rebuilds {
			s.rebuilds++
			if rb.Matched {
				s.rebuildMatched++
			}
		}
	}
	approvals, err := d.newest(ctx, attest.PredicateApproval)
	if err != nil {
		return nil, err
	}
	for dg, bs := range bySubject(approvals) {
		prov, err := d.cfg.Index.Search(ctx, store.Query{Digest: dg, PredicateType: attest.PredicateSLSAv1, Limit: 10})
		if err != nil {
			return nil, err
		}
		for _, p := range prov {
			bs = append(bs, p.Bundle)
		}
		ev, _, err := gate.Gather(ctx, dg, bs, tm)
		if err != nil || len(ev.Provenance) == 0 || !ev.Provenance[0].TimestampVerified {
			continue
		}
		built := ev.Provenance[0].SignedAt
		for _, a := range ev.Approvals {
			if a.TimestampVerified && !a.SignedAt.Before(built) {
				s.waits = append(s.waits, a.SignedAt.Sub(built))
			}
		}
	}
	sort.Slice(s.waits, func(i, j int) bool { return s.waits[i] < s.waits[j] })
	if s.decisions, err = d.decisionFiguresOf(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// register adds the figures the metrics page shows to reg.
func (d *Dashboard) register(reg prometheus.Registerer) error {
	ctx := context.Background()
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custody_reproducible_build_ratio",
			Help: "Share of verified rebuilds (newest 500) that produced the same digest; -1 when there are none."},
			func() float64 {
				s, err := d.stats.get(ctx)
				if err != nil || s.rebuilds == 0 {
					return -1
				}
				return float64(s.rebuildMatched) / float64(s.rebuilds)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custody_approval_wait_median_seconds",
			Help: "Median time from the verified build signature to a verified approval (newest 500 approvals); -1 when none."},
			func() float64 {
				s, err := d.stats.get(ctx)
				if err != nil || len(s.waits) == 0 {
					return -1
				}
				return s.waits[len(s.waits)/2].Seconds()
			}),
	}
	for i, q := range []string{"0.5", "0.9", "0.99"} {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custody_dashboard_verification_seconds",
			Help: "Per-bundle verification latency of the dashboard's live checks (last 4096), by quantile.", ConstLabels: prometheus.Labels{"quantile": q}},
			func() float64 { p, _ := d.rec.percentiles(); return p[i].Seconds() }))
	}
	cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custody_dashboard_verification_failures_total",
		Help: "Bundles the dashboard's live checks rejected (last 48 hours)."}, func() float64 {
		d.rec.mu.Lock()
		defer d.rec.mu.Unlock()
		n := 0
		for _, m := range d.rec.failures {
			for _, c := range m {
				n += c
			}
		}
		return float64(n)
	}))
	if d.cfg.Incidents != nil {
		restricted := d.cfg.RestrictedRegisterer
		if restricted == nil {
			restricted = reg
		}
		if err := restricted.Register(newIncidentCollector(d)); err != nil {
			return fmt.Errorf("couldn't register dashboard metrics: %w", err)
		}
	}
	cs = append(cs, decisionCollector{d})
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("couldn't register dashboard metrics: %w", err)
		}
	}
	return nil
}

// Bar is one bar of a chart, laid out in SVG user units.
type Bar struct {
	Label      string
	Value      string
	X, Y, W, H float64
	LabelX     float64
	LabelY     float64
}

// Chart is a bar chart drawn on the server as SVG.
type Chart struct {
	Title         string
	Width, Height float64
	Bars          []Bar
	Empty         string
	Horizontal    bool
}

// hbars lays out a horizontal bar chart of labelled values.
func hbars(title string, labels []string, values []float64, format func(float64) string) Chart {
	c := Chart{Title: title, Width: 600, Horizontal: true}
	if len(values) == 0 {
		c.Empty, c.Height = "no data yet", 30
		return c
	}
	maxV := 0.0
	for _, v := range values {
		maxV = math.Max(maxV, v)
	}
	const rowH, left, right = 28.0, 230.0, 80.0
	c.Height = rowH * float64(len(values))
	for i, v := range values {
		w := 0.0
		if maxV > 0 {
			w = (c.Width - left - right) * v / maxV
		}
		y := float64(i) * rowH
		c.Bars = append(c.Bars, Bar{Label: labels[i], Value: format(v), X: left, Y: y + 4, W: math.Max(w, 1), H: rowH - 8,
			LabelX: left + math.Max(w, 1) + 6, LabelY: y + rowH/2 + 5})
	}
	return c
}

// vbars lays out a vertical bar chart (a series over time).
func vbars(title string, labels []string, values []float64, format func(float64) string) Chart {
	c := Chart{Title: title, Width: 600, Height: 200}
	if len(values) == 0 {
		c.Empty, c.Height = "no data yet", 30
		return c
	}
	maxV := 0.0
	for _, v := range values {
		maxV = math.Max(maxV, v)
	}
	const top, bottom = 20.0, 30.0
	slot := c.Width / float64(len(values))
	for i, v := range values {
		h := 0.0
		if maxV > 0 {
			h = (c.Height - top - bottom) * v / maxV
		}
		x := float64(i) * slot
		c.Bars = append(c.Bars, Bar{Label: labels[i], Value: format(v), X: x + slot*0.15, Y: c.Height - bottom - h, W: slot * 0.7, H: h,
			LabelX: x + slot/2, LabelY: c.Height - 10})
	}
	return c
}

type serverCount struct {
	Result, Reason string
	Count          float64
}

type metricsView struct {
	Failures      Chart // by reason, last 48 hours
	FailuresHours Chart // per hour, last 24 hours
	Latency       Chart
	Samples       int
	Waits         Chart
	RebuildRate   string
	Rebuilds      Chart
	Server        []serverCount
	Problem       string
	// Incidents: IncidentsAbsent when Config.Incidents is nil, else the
	// figures or IncidentsProblem.
	IncidentsAbsent  bool
	IncidentsProblem string
	Incidents        incidentFigures
	Detect, Contain  Chart // per incident, newest maxIncidentBars
	// Decisions: nil without decision signers; else the latency budget
	// and false positive figures of the recorded decisions.
	Decisions      *decisionFigures
	OverBudget     Chart
	Cleared        Chart
	FalsePositives []falsePositive
}

// maxIncidentBars is how many incidents the incident charts show.
const maxIncidentBars = 10

// incidentCharts draws time to detect and to contain per incident (newest
// opened first).
func incidentCharts(views []*incidentView) (detect, contain Chart) {
	byOpened := append([]*incidentView(nil), views...)
	sort.SliceStable(byOpened, func(i, j int) bool { return byOpened[i].OpenedAt().After(byOpened[j].OpenedAt()) })
	var dl, cl []string
	var dv, cv []float64
	for _, iv := range byOpened {
		if iv.HasDetect && len(dl) < maxIncidentBars {
			dl, dv = append(dl, iv.ID), append(dv, float64(iv.Detect))
		}
		if iv.HasContain && len(cl) < maxIncidentBars {
			cl, cv = append(cl, iv.ID), append(cv, float64(iv.Contain))
		}
	}
	f := func(v float64) string { return time.Duration(v).Round(time.Second).String() }
	return hbars("Time to detect per incident (opened − compromised since)", dl, dv, f),
		hbars("Time to contain per incident (opened → last rollback)", cl, cv, f)
}

func intf(v float64) string { return fmt.Sprintf("%.0f", v) }

func durf(v float64) string { return time.Duration(v).Round(time.Microsecond).String() }

// failureCharts draws the live checks' failures by reason and by hour.
func (d *Dashboard) failureCharts(mv *metricsView) {
	now := d.cfg.Now()
	d.rec.mu.Lock()
	byReason := map[string]int{}
	h := now.Unix() / 3600
	var hourLabels []string
	var hourValues []float64
	for i := int64(23); i >= 0; i-- {
		n := 0
		for _, c := range d.rec.failures[h-i] {
			n += c
		}
		hourLabels = append(hourLabels, time.Unix((h-i)*3600, 0).UTC().Format("15h"))
		hourValues = append(hourValues, float64(n))
	}
	for _, m := range d.rec.failures {
		for reason, c := range m {
			byReason[reason] += c
		}
	}
	d.rec.mu.Unlock()
	var reasons []string
	for k := range byReason {
		reasons = append(reasons, k)
	}
	sort.Slice(reasons, func(i, j int) bool {
		return byReason[reasons[i]] > byReason[reasons[j]] || byReason[reasons[i]] == byReason[reasons[j]] && reasons[i] < reasons[j]
	})
	var rv []float64
	for _, k := range reasons {
		rv = append(rv, float64(byReason[k]))
	}
	mv.Failures = hbars("Failed verifications by reason (live checks, last 48 hours)", reasons, rv, intf)
	mv.FailuresHours = vbars("Failed verifications per hour (UTC, last 24 hours)", hourLabels, hourValues, intf)
	for i := range mv.FailuresHours.Bars {
		if i%4 != 0 {
			mv.FailuresHours.Bars[i].Label = ""
		}
	}
}

// indexCharts draws the figures computed from the index: rebuilds,
// approval waits, recorded decisions.
func (d *Dashboard) indexCharts(ctx context.Context, mv *metricsView) {
	s, err := d.stats.get(ctx)
	if err != nil {
		mv.Problem = "couldn't compute index figures: " + err.Error()
	} else {
		if s.rebuilds > 0 {
			mv.RebuildRate = fmt.Sprintf("%.1f%% (%d of %d verified rebuilds agree)", 100*float64(s.rebuildMatched)/float64(s.rebuilds), s.rebuildMatched, s.rebuilds)
		}
		mv.Rebuilds = hbars("Verified rebuilds", []string{"agree", "differ"},
			[]float64{float64(s.rebuildMatched), float64(s.rebuilds - s.rebuildMatched)}, intf)
		if s.rebuilds == 0 {
			mv.Rebuilds = hbars("Verified rebuilds", nil, nil, intf)
		}
		if len(s.waits) > 0 {
			q := func(p float64) float64 { return float64(s.waits[int(math.Ceil(p*float64(len(s.waits))))-1]) }
			mv.Waits = hbars("Approval wait (build signed → approval signed)", []string{"p50", "p90", "max"},
				[]float64{q(0.5), q(0.9), float64(s.waits[len(s.waits)-1])}, func(v float64) string { return time.Duration(v).Round(time.Second).String() })
		} else {
			mv.Waits = hbars("Approval wait (build signed → approval signed)", nil, nil, intf)
		}
		if s.decisions != nil {
			mv.Decisions = s.decisions
			mv.OverBudget, mv.Cleared, mv.FalsePositives = decisionCharts(s.decisions)
		}
	}
}

func (d *Dashboard) metrics(r *http.Request) view {
	mv := metricsView{}
	d.failureCharts(&mv)
	p, n := d.rec.percentiles()
	mv.Samples = n
	if n > 0 {
		mv.Latency = hbars("Verification latency per bundle", []string{"p50", "p90", "p99"},
			[]float64{float64(p[0]), float64(p[1]), float64(p[2])}, durf)
	} else {
		mv.Latency = hbars("Verification latency per bundle", nil, nil, durf)
	}
	d.indexCharts(r.Context(), &mv)
	if d.cfg.Incidents == nil {
		mv.IncidentsAbsent = true
	} else if f, err := d.incidentFigures(r.Context()); err != nil {
		mv.IncidentsProblem = "couldn't read incidents: " + err.Error()
	} else {
		mv.Incidents = f
		mv.Detect, mv.Contain = incidentCharts(f.Views)
	}
	if d.cfg.Gatherer != nil {
		mfs, err := d.cfg.Gatherer.Gather()
		if err == nil {
			for _, mf := range mfs {
				if mf.GetName() != "custody_verifications_total" {
					continue
				}
				for _, m := range mf.GetMetric() {
					sc := serverCount{Count: m.GetCounter().GetValue()}
					for _, l := range m.GetLabel() {
						switch l.GetName() {
						case "result":
							sc.Result = l.GetValue()
						case "reason":
							sc.Reason = l.GetValue()
						}
					}
					mv.Server = append(mv.Server, sc)
				}
			}
		}
	}
	return view{name: "metrics", title: "Metrics", data: mv}
}
