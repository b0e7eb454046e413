package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/store"
)

// maxIncidentRecords bounds how many incident records the dashboard reads.
const maxIncidentRecords = 100000

// errNoIncidents means Config.Incidents is nil.
var errNoIncidents = errors.New("incident records are not available")

// incidentView is one incident as its records tell it.
type incidentView struct {
	ID     string
	Opened *store.IncidentRecord // nil when the ledger has no opened record
	Closed *store.IncidentRecord // nil while the incident is open
	// Quarantined are the quarantine records: what the deploy gate refuses.
	Quarantined []*store.IncidentRecord
	// Report is the newest report that parsed (nil when none did);
	// ReportRecord is its record.
	Report       *incident.Report
	ReportRecord *store.IncidentRecord
	// Problems are records that could not be read as expected (a report
	// that does not parse, records without an opened record); shown on the
	// page, never skipped silently.
	Problems []string
	// Detect is opened − compromised since; Contain is opened → last
	// successful rollback (both from the report).
	Detect, Contain       time.Duration
	HasDetect, HasContain bool
}

// Open reports whether no closed record exists.
func (iv *incidentView) Open() bool { return iv.Closed == nil }

// OpenedAt is when the incident was opened: the report's time, else the
// opened record's.
func (iv *incidentView) OpenedAt() time.Time {
	if iv.Report != nil && !iv.Report.OpenedAt.IsZero() {
		return iv.Report.OpenedAt
	}
	if iv.Opened != nil {
		return iv.Opened.Time
	}
	return time.Time{}
}

// allIncidentRecords reads incident records matching q (every page), in
// ID order. Reading more than maxIncidentRecords is an error: a partial
// list could hide a quarantine.
func (d *Dashboard) allIncidentRecords(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	if d.cfg.Incidents == nil {
		return nil, errNoIncidents
	}
	var out []*store.IncidentRecord
	q.Limit = store.MaxLimit
	for {
		page, err := d.cfg.Incidents(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(out) > maxIncidentRecords {
			return nil, fmt.Errorf("more than %d incident records; the dashboard does not read them all", maxIncidentRecords)
		}
		if len(page) < q.Limit {
			return out, nil
		}
		q.AfterID = page[len(page)-1].ID
	}
}

// incidentViews groups records (ID order) by incident: open incidents
// first, then newest opened first.
func incidentViews(recs []*store.IncidentRecord) []*incidentView {
	byID := map[string]*incidentView{}
	var out []*incidentView
	for _, r := range recs {
		iv := byID[r.Incident]
		if iv == nil {
			iv = &incidentView{ID: r.Incident}
			byID[r.Incident] = iv
			out = append(out, iv)
		}
		switch r.Event {
		case store.IncidentOpened:
			if iv.Opened == nil {
				iv.Opened = r
			} else {
				iv.Problems = append(iv.Problems, fmt.Sprintf("record %d opens the incident again (ignored; the first opened record counts)", r.ID))
			}
		case store.IncidentClosed:
			if iv.Closed == nil {
				iv.Closed = r
			}
		case store.IncidentQuarantined:
			iv.Quarantined = append(iv.Quarantined, r)
		case store.IncidentReported:
			var rep incident.Report
			if err := json.Unmarshal(r.Report, &rep); err != nil || rep.Found == nil {
				if err == nil {
					err = errors.New("it names no findings")
				}
				iv.Problems = append(iv.Problems, fmt.Sprintf("report in record %d does not parse: %v", r.ID, err))
				continue
			}
			iv.Report, iv.ReportRecord = &rep, r
		default:
			iv.Problems = append(iv.Problems, fmt.Sprintf("record %d has unknown event %q", r.ID, r.Event))
		}
	}
	for _, iv := range out {
		if iv.Opened == nil {
			iv.Problems = append(iv.Problems, "no opened record: when and why the incident was opened is unknown")
		}
		if iv.Report == nil {
			iv.Problems = append(iv.Problems, "no readable report: what was found and rolled back is unknown (the quarantine records below are what the deploy gate refuses)")
			continue
		}
		rep := iv.Report
		switch {
		case rep.CompromisedSince.IsZero() || rep.OpenedAt.IsZero():
		case rep.CompromisedSince.After(rep.OpenedAt):
			// The server refuses such reports now; one stored before must
			// not make the mean time to detect negative.
			iv.Problems = append(iv.Problems, "the report's compromise time is after the incident was opened: left out of the time to detect")
		default:
			iv.Detect, iv.HasDetect = rep.OpenedAt.Sub(rep.CompromisedSince), true
		}
		if last, ok := lastRollback(rep); ok && !rep.OpenedAt.IsZero() {
			iv.Contain, iv.HasContain = last.Sub(rep.OpenedAt), true
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Open() != out[j].Open() {
			return out[i].Open()
		}
		return out[i].OpenedAt().After(out[j].OpenedAt())
	})
	return out
}

// lastRollback is the time of the report's last successful rollback.
func lastRollback(rep *incident.Report) (time.Time, bool) {
	var last time.Time
	for _, rb := range rep.Rollbacks {
		if rb.Outcome == incident.RolledBack && rb.At.After(last) {
			last = rb.At
		}
	}
	return last, !last.IsZero()
}

// incidentFigures are the incident metrics, computed from incident
// records: the metrics page and /metrics show the same.
type incidentFigures struct {
	Incidents, Open int
	// Detected counts incidents with a report (compromised since, opened);
	// MeanDetect is their mean opened − compromised since.
	Detected   int
	MeanDetect time.Duration
	// Contained counts incidents whose report has a successful rollback;
	// MeanContain is their mean opened → last rollback.
	Contained   int
	MeanContain time.Duration
	// Uncontained counts incidents with a report where an environment
	// still runs an affected artifact (no rollback was possible or it
	// failed).
	Uncontained int
	// Quarantined counts the distinct artifacts any incident quarantined.
	Quarantined int
	Views       []*incidentView
}

func figuresOf(views []*incidentView) incidentFigures {
	f := incidentFigures{Incidents: len(views), Views: views}
	var det, con time.Duration
	quarantined := map[string]bool{}
	for _, iv := range views {
		for _, r := range iv.Quarantined {
			quarantined[r.Artifact] = true
		}
		if iv.Open() {
			f.Open++
		}
		if iv.HasDetect {
			f.Detected++
			det += iv.Detect
		}
		if iv.HasContain {
			f.Contained++
			con += iv.Contain
		}
		if iv.Report != nil {
			for _, rb := range iv.Report.Rollbacks {
				if rb.Outcome != incident.RolledBack {
					f.Uncontained++
					break
				}
			}
		}
	}
	f.Quarantined = len(quarantined)
	if f.Detected > 0 {
		f.MeanDetect = det / time.Duration(f.Detected)
	}
	if f.Contained > 0 {
		f.MeanContain = con / time.Duration(f.Contained)
	}
	return f
}

// incidentFigures reads every incident record and computes the figures.
func (d *Dashboard) incidentFigures(ctx context.Context) (incidentFigures, error) {
	recs, err := d.allIncidentRecords(ctx, store.IncidentQuery{})
	if err != nil {
		return incidentFigures{}, err
	}
	return figuresOf(incidentViews(recs)), nil
}

type incidentsPage struct {
	Absent    bool
	Incidents []*incidentView
	Figures   incidentFigures
}

func (d *Dashboard) incidents(r *http.Request) view {
	if d.cfg.Incidents == nil {
		return view{name: "incidents", title: "Incidents", data: incidentsPage{Absent: true}}
	}
	f, err := d.incidentFigures(r.Context())
	if err != nil {
		return fail(http.StatusInternalServerError, "couldn't read incidents: "+err.Error())
	}
	return view{name: "incidents", title: "Incidents", data: incidentsPage{Incidents: f.Views, Figures: f}}
}

// quarantineView is what the artifact page says about quarantine.
type quarantineView struct {
	Checked bool   // false: Problem says why it is unknown
	Problem string // the quarantine could not be read
	Records []*store.IncidentRecord
}

// quarantineOf reads the quarantine records about digest. When they cannot
// be read the view says so: the page never implies "not quarantined".
func (d *Dashboard) quarantineOf(ctx context.Context, digest string) quarantineView {
	if d.cfg.Incidents == nil {
		return quarantineView{Problem: "incident records are not available: whether an incident quarantined this artifact is unknown"}
	}
	recs, err := d.allIncidentRecords(ctx, store.IncidentQuery{Artifact: digest, Event: store.IncidentQuarantined})
	if err != nil {
		return quarantineView{Problem: "couldn't read incident records: " + err.Error() + "; whether an incident quarantined this artifact is unknown"}
	}
	var out []*store.IncidentRecord
	for _, r := range recs {
		// The query asked for these; a source that ignores filters must
		// not put another artifact's quarantine on this page.
		if r.Artifact == digest && r.Event == store.IncidentQuarantined {
			out = append(out, r)
		}
	}
	return quarantineView{Checked: true, Records: out}
}

// incidentCollector exports the incident figures on /metrics, computed
// from the incident records once per scrape (as the metrics page does).
type incidentCollector struct {
	d                                *Dashboard
	count, detect, contain, nc, arts *prometheus.Desc
}

func newIncidentCollector(d *Dashboard) *incidentCollector {
	return &incidentCollector{d: d,
		count: prometheus.NewDesc("custody_incidents", "Incidents in the incident records, by state (open, closed).", []string{"state"}, nil),
		detect: prometheus.NewDesc("custody_incident_mean_time_to_detect_seconds",
			"Mean time from compromised-since to the incident being opened, over incidents with a report; -1 when none, NaN when the records could not be read.", nil, nil),
		contain: prometheus.NewDesc("custody_incident_mean_time_to_contain_seconds",
			"Mean time from an incident being opened to its last successful rollback, over incidents with one; -1 when none, NaN when the records could not be read.", nil, nil),
		nc: prometheus.NewDesc("custody_incidents_not_contained",
			"Incidents whose report leaves an environment running an affected artifact (no rollback possible, or it failed).", nil, nil),
		arts: prometheus.NewDesc("custody_quarantined_artifacts",
			"Distinct artifacts quarantined by incidents (the deploy gate and the admission webhook refuse them).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *incidentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.detect
	ch <- c.contain
	ch <- c.nc
	ch <- c.arts
}

// Collect implements prometheus.Collector.
func (c *incidentCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.d.incidentFigures(ctx)
	if err != nil {
		c.d.logger.Error("couldn't read incidents for /metrics", "err", err)
		ch <- prometheus.MustNewConstMetric(c.detect, prometheus.GaugeValue, math.NaN())
		ch <- prometheus.MustNewConstMetric(c.contain, prometheus.GaugeValue, math.NaN())
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(f.Open), "open")
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(f.Incidents-f.Open), "closed")
	ch <- prometheus.MustNewConstMetric(c.detect, prometheus.GaugeValue, f.meanDetectSeconds())
	ch <- prometheus.MustNewConstMetric(c.contain, prometheus.GaugeValue, f.meanContainSeconds())
	ch <- prometheus.MustNewConstMetric(c.nc, prometheus.GaugeValue, float64(f.Uncontained))
	ch <- prometheus.MustNewConstMetric(c.arts, prometheus.GaugeValue, float64(f.Quarantined))
}

// meanDetectSeconds is MeanDetect in seconds, -1 when no incident has a
// report.
func (f incidentFigures) meanDetectSeconds() float64 {
	if f.Detected == 0 {
		return -1
	}
	return f.MeanDetect.Seconds()
}

// meanContainSeconds is MeanContain in seconds, -1 when no incident has a
// rollback.
func (f incidentFigures) meanContainSeconds() float64 {
	if f.Contained == 0 {
		return -1
	}
	return f.MeanContain.Seconds()
}
