package admission

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/oci/ocitest"
)

// TestRegistryEvidence: with evidence read from the images' registries
// (OCI 1.1 referrers, or the tag-schema fallback), on every registry the
// suite has (in process with and without the referrers API, and the real
// ones scripts/test starts): an image whose provenance and SBOM are
// attached passes; the same digest in another repository, without them,
// does not (a decision is about the digest in one repository); a registry
// outside --allow-registry is refused naming it; an unreachable registry
// fails closed naming it.
func TestRegistryEvidence(t *testing.T) {
	for _, r := range ocitest.Registries(t) {
		t.Run(r.Name, func(t *testing.T) {
			reg := registryAt(t, r.Host)
			f := newFixture(t, func(c *Config) {
				c.Source = nil
				c.Attached = OCIAttached(reg.client)
				c.Registries = []string{reg.host, "127.0.0.1:1"}
				c.Timeout = 5 * time.Second
			})
			dg := reg.push(t, "app", "1.4")
			reg.attach(t, "app", dg, f.sign(dg, attest.PredicateSLSAv1, f.provenance()))
			reg.attach(t, "app", dg, f.sign(dg, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX"}))
			ask := func(uid, image string) (bool, string) {
				t.Helper()
				_, rr := f.post(review(t, uid, "shop", podKind, pod(image)))
				if rr.Response.Allowed {
					return true, ""
				}
				return false, rr.Response.Result.Message
			}
			if ok, msg := ask("ok", reg.image("app", ":1.4@"+dg)); !ok {
				t.Fatalf("denied with its evidence attached: %s", msg)
			}
			// the same digest in a repository without evidence
			if ok, msg := ask("other", reg.image("copy", "@"+dg)); ok || !strings.Contains(msg, "no verified SLSA provenance") {
				t.Fatalf("copy without evidence: %v %s", ok, msg)
			}
			if ok, msg := ask("evil", "evil.example/app@"+dg); ok || !strings.Contains(msg, "registry evil.example is not one custody admission reads evidence from") {
				t.Fatalf("registry not allowed: %v %s", ok, msg)
			}
			if ok, msg := ask("down", "127.0.0.1:1/app@"+dg); ok || !strings.Contains(msg, "couldn't fetch evidence: registry 127.0.0.1:1") {
				t.Fatalf("registry down: %v %s", ok, msg)
			}
		})
	}
}

// hostileRegistry answers every manifest request of a repository the way
// its name says: "huge" sends 64 MiB, "junk" bytes that are no manifest,
// "err" a 500 whose body tries to inject lines into the message, "slow"
// nothing until the client gives up, "redirect" a redirect to another
// host. Its /v2/ answers 200.
func hostileRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/huge/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			chunk := []byte(strings.Repeat("{", 1<<20))
			for range 64 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case strings.HasPrefix(r.URL.Path, "/v2/junk/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			fmt.Fprint(w, "\x00\x01not a manifest")
		case strings.HasPrefix(r.URL.Path, "/v2/err/"):
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":[{"code":"UNKNOWN","message":"allowed: true\ncustody: injected"}]}`)
		case strings.HasPrefix(r.URL.Path, "/v2/slow/"):
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		case strings.HasPrefix(r.URL.Path, "/v2/redirect/"):
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestHostileRegistry: whatever a registry answers (oversized, junk, an
// error with text meant for the user, nothing, a redirect elsewhere),
// /mutate and /validate with registry evidence refuse within the
// deadline, naming the registry, with a one-line reason that repeats none
// of the registry's text.
func TestHostileRegistry(t *testing.T) {
	host := hostileRegistry(t)
	reg := registryAt(t, host)
	f := newFixture(t, func(c *Config) {
		c.Source = nil
		c.Attached = OCIAttached(reg.client)
		c.Resolver = OCIResolver(reg.client)
		c.Registries = []string{host}
		c.Timeout = 2 * time.Second
	})
	dg := "sha256:" + strings.Repeat("e5", 32)
	for _, repo := range []string{"huge", "junk", "err", "slow", "redirect"} {
		t.Run(repo, func(t *testing.T) {
			for _, tc := range []struct{ path, image string }{
				{"/mutate", host + "/" + repo + ":1"},
				{"/validate", host + "/" + repo + "@" + dg},
			} {
				start := time.Now()
				_, rr := f.postTo(tc.path, review(t, "h", "shop", podKind, pod(tc.image)))
				if rr.Response.Allowed || rr.Response.Patch != nil {
					t.Fatalf("%s admitted: %+v", tc.path, rr.Response)
				}
				msg := rr.Response.Result.Message
				if !strings.Contains(msg, "registry "+host) || strings.Contains(msg, "injected") || strings.Count(msg, "\n") != 1 {
					t.Fatalf("%s message %q", tc.path, msg)
				}
				t.Logf("%s: %s", tc.path, msg)
				if time.Since(start) > time.Minute {
					t.Fatalf("%s not answered", tc.path)
				}
			}
		})
	}
}
