// Package admission benchmarks custody admission's POST /mutate (tags
// pinned to digests at a real registry) against /validate of the same
// image, over HTTPS on loopback, in one process and one run: the webhook
// as custody admission serves it (admission.Webhook.Handler), its
// registry client internal/oci. Results are in results.md ("/mutate").
//
//	go test -run x -bench . -benchtime 2000x ./bench/admission
//
// The registry is the one scripts/test starts (CUSTODY_TEST_REGISTRY:
// Debian's docker-registry 2.8, referrers by the tag-schema fallback) when
// set, else go-containerregistry's in process.
package admission

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/admission"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/internal/oci/ocitest"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
)

// setup pushes an image as app:1.4, signs its provenance and attaches it
// (and writes it to a directory), and returns a webhook's HTTPS server
// made with mod, the image's host/repo and digest.
type setup struct {
	host, repo, digest string
	dir                string
	key                crypto.Signer
	cl                 *oci.Client
	pol                *policy.Policy
}

func newSetup(b *testing.B) *setup {
	b.Helper()
	s := &setup{host: os.Getenv(ocitest.EnvRegistry)}
	if s.host == "" {
		s.host = ocitest.InProcess(b, false)
	}
	s.repo = ocitest.RandomRepo("bench-admission")
	s.digest = ocitest.PushImage(b, s.host, s.repo, "1.4").Digest
	var err error
	if s.key, err = signer.Generate(signer.ECDSAP256); err != nil {
		b.Fatal(err)
	}
	id, _ := gate.KeyID(s.key.Public())
	if s.pol, err = policy.Parse([]byte("apiVersion: custody.dev/policy/v1\nenvironment: prod\ntrustedBuilders: [https://custody.dev/builders/local@v1]\nsigners: [{keyId: " + id + "}]\n")); err != nil {
		b.Fatal(err)
	}
	built := time.Now().Add(-time.Hour).UTC()
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody, ExternalParameters: attest.CustodyExternalParameters{
			Command: []string{"make"}, Source: attest.CustodySource{URI: "git+https://example.com/app", Commit: strings.Repeat("1", 40)}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/local@v1"},
			Metadata: &attest.BuildMetadata{InvocationID: "b1", StartedOn: &built, FinishedOn: &built}},
	}
	st, err := attest.NewStatement([]attest.Subject{{Name: "app", Digest: map[string]string{"sha256": strings.TrimPrefix(s.digest, "sha256:")}}}, attest.PredicateSLSAv1, prov)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := st.Marshal()
	bundle, err := signer.SignStatement(context.Background(), s.key, raw)
	if err != nil {
		b.Fatal(err)
	}
	s.dir = b.TempDir()
	if err := os.WriteFile(filepath.Join(s.dir, "prov.json"), bundle, 0o644); err != nil {
		b.Fatal(err)
	}
	cfgFile := filepath.Join(b.TempDir(), "config.json")
	os.WriteFile(cfgFile, []byte(`{"auths":{}}`), 0o600)
	if s.cl, err = oci.New(oci.Options{Insecure: []string{s.host}, ConfigPath: cfgFile}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.cl.Attach(context.Background(), oci.Ref{Registry: s.host, Repository: s.repo, Digest: s.digest}, bundle); err != nil {
		b.Fatal(err)
	}
	return s
}

// server is a webhook like custody admission --mutate --allow-registry
// HOST, evidence from the directory (or, registryEvidence, from the
// registry), allows cached for allowTTL.
func (s *setup) server(b *testing.B, registryEvidence bool, allowTTL time.Duration) *httptest.Server {
	b.Helper()
	tm, _ := gate.KeyMaterial(s.key.Public())
	cfg := admission.Config{Policies: map[string]*policy.Policy{"prod": s.pol}, Namespaces: map[string]string{"*": "prod"}, Trust: tm,
		Resolver: admission.OCIResolver(s.cl), Registries: []string{s.host}, AllowTTL: allowTTL, Timeout: 5 * time.Second}
	if registryEvidence {
		cfg.Attached = admission.OCIAttached(s.cl)
	} else {
		cfg.Source = admission.DirSource(s.dir)
	}
	wh, err := admission.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewTLSServer(wh.Handler())
	b.Cleanup(srv.Close)
	return srv
}

// reviewOf is an AdmissionReview CREATE of a Pod running image.
func reviewOf(image string) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b","namespace":"shop","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"web","image":%q}]}}}}`, image)
}

// measure posts body to srv's path b.N times, one at a time, checks each
// answer with ok, and reports p50 and p99.
func measure(b *testing.B, srv *httptest.Server, path string, body []byte, ok func([]byte) bool) {
	b.Helper()
	c := srv.Client()
	post := func() {
		resp, err := c.Post(srv.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !ok(out.Bytes()) {
			b.Fatalf("%s: %d %s", path, resp.StatusCode, out.Bytes())
		}
	}
	post() // connection, first decision
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		post()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func allowed(resp []byte) bool {
	var r struct {
		Response struct {
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
		} `json:"response"`
	}
	return json.Unmarshal(resp, &r) == nil && r.Response.Allowed
}

// BenchmarkMutate: rows of one run, same image, same registry.
//
//	validate-warm            /validate of app:1.4@sha256:…, the allow cached (the baseline)
//	validate-cold-dir        /validate, nothing cached, evidence from a directory
//	validate-cold-registry   /validate, nothing cached, evidence read from the registry
//	mutate                   /mutate of app:1.4: the tag resolved at the registry, patch answered
func BenchmarkMutate(b *testing.B) {
	s := newSetup(b)
	pinned := reviewOf(s.host + "/" + s.repo + ":1.4@" + s.digest)
	tagged := reviewOf(s.host + "/" + s.repo + ":1.4")
	warm := s.server(b, false, time.Hour)
	cold := s.server(b, false, time.Nanosecond)
	coldReg := s.server(b, true, time.Nanosecond)
	b.Run("validate-warm", func(b *testing.B) { measure(b, warm, "/validate", pinned, allowed) })
	b.Run("validate-cold-dir", func(b *testing.B) { measure(b, cold, "/validate", pinned, allowed) })
	b.Run("validate-cold-registry", func(b *testing.B) { measure(b, coldReg, "/validate", pinned, allowed) })
	b.Run("mutate", func(b *testing.B) {
		measure(b, warm, "/mutate", tagged, func(resp []byte) bool {
			return allowed(resp) && bytes.Contains(resp, []byte(`"patch":`))
		})
	})
}
