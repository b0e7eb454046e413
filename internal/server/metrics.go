package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/custody-dev/custody/internal/api"
)

// metrics are the server's Prometheus metrics, in a registry of its own,
// served at /metrics to anyone. Series that tell an attacker about
// incidents (open incidents, quarantined artifacts, times to detect and to
// contain) go to restricted, served at /metrics only to auditor and admin
// tokens (serveMetrics).
type metrics struct {
	reg           *prometheus.Registry
	restricted    *prometheus.Registry
	appends       *prometheus.CounterVec
	appendLatency prometheus.Histogram
	integration   prometheus.Histogram
	verifications *prometheus.CounterVec
	requests      *prometheus.HistogramVec
	rejected      prometheus.Counter
	audits        *prometheus.CounterVec
	openWrites    *prometheus.CounterVec
	sessionsSwept prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg:        prometheus.NewRegistry(),
		restricted: prometheus.NewRegistry(),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_log_appends_total", Help: "Log appends by the signing service, by result.",
		}, []string{"result"}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_append_seconds", Help: "Time to acknowledge a signing request: sign, timestamp, log, index.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		integration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_log_integration_delay_seconds", Help: "Time from submitting an entry until a published checkpoint includes it.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_verifications_total", Help: "Verifications of pushed bundles, by result and reason.",
		}, []string{"result", "reason"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "custody_http_request_duration_seconds", Help: "HTTP request latency by route and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custody_overload_rejections_total", Help: "Write requests refused with 503 because too many were in flight.",
		}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_audit_entries_total", Help: "Audit entries written to the log, by result (an action whose entry fails is refused).",
		}, []string{"result"}),
		openWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_open_writes_total", Help: "Writes without a token (serve --open-writes), by service (log, tsa) and result " +
				"(accepted, duplicate, refused, rate_limited, overloaded, failed).",
		}, []string{"service", "result"}),
		sessionsSwept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custody_sessions_swept_total", Help: "Ended sessions and sign-ins in progress deleted from the replicas' shared state by the periodic sweep.",
		}),
	}
	m.reg.MustRegister(m.appends, m.appendLatency, m.integration, m.verifications, m.requests, m.rejected, m.audits, m.openWrites, m.sessionsSwept)
	return m
}

// register adds the metrics that read the server's state.
func (m *metrics) register(s *Server) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custody_log_size", Help: "Entries in the latest published checkpoint.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cp, err := s.log.Checkpoint(ctx)
		if err != nil {
			return -1
		}
		return float64(cp.Size)
	}))
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument records the latency of h under route.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	})
}

// serveMetrics answers GET /metrics: without a token the public series;
// with "Authorization: Bearer TOKEN" of an auditor or admin, also the
// restricted ones (a token of another role gets 403, an invalid one 401:
// a scraper configured with a bad token hears of it).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return
	}
	all := promhttp.HandlerFor(prometheus.Gatherers{s.metrics.reg, s.metrics.restricted}, promhttp.HandlerOpts{})
	s.auth(all.ServeHTTP, api.RoleAuditor, api.RoleAdmin)(w, r)
}
