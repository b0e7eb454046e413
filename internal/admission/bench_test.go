package admission

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// BenchmarkReviewWarm is one warm-cache decision in process: parse the
// review, find the images, answer from the cache. bench/admission measures
// the same over HTTPS with hey. Decisions are recorded (as custody
// admission always does), so the metrics and the recorder's cost on a hit
// are in.
func BenchmarkReviewWarm(b *testing.B) {
	f := newFixture(&testing.T{}, func(c *Config) {
		c.Decisions = RecorderFunc(func(context.Context, string, string, []byte) error { return nil })
	})
	body := review(&testing.T{}, "b", "shop", podKind, pod("ghcr.io/org/app@"+goodDigest, "ghcr.io/org/app:v1@"+goodDigest))
	r, err := ParseReview(body)
	if err != nil {
		b.Fatal(err)
	}
	if !f.wh.Review(context.Background(), r).Allowed {
		b.Fatal("denied")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := ParseReview(body)
		if err != nil {
			b.Fatal(err)
		}
		var resp *admissionv1.AdmissionResponse = f.wh.Review(context.Background(), r)
		if !resp.Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkHandlerWarm is BenchmarkReviewWarm through the HTTP handler
// (no network, no TLS): reading the body, the decision, encoding the
// answer.
func BenchmarkHandlerWarm(b *testing.B) {
	f := newFixture(&testing.T{}, func(c *Config) {
		c.Decisions = RecorderFunc(func(context.Context, string, string, []byte) error { return nil })
	})
	body := review(&testing.T{}, "b", "shop", podKind, pod("ghcr.io/org/app@"+goodDigest, "ghcr.io/org/app:v1@"+goodDigest))
	h := f.wh.Handler()
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body)))
		return rec
	}
	if rec := serve(); !bytes.Contains(rec.Body.Bytes(), []byte(`"allowed":true`)) {
		b.Fatalf("not allowed: %s", rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
}
