package admission

import (
	"context"
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
