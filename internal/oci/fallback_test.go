package oci_test

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/oci"

	"github.com/custody-dev/custody/internal/oci/ocitest"
)

// casRegistry is go-containerregistry's registry without the referrers API,
// made to honour conditional manifest PUTs as the distribution spec's
// conditional requests describe them: GETs of a manifest carry an ETag (its
// digest, quoted, as distribution sends it), and a PUT to a tag with
// If-Match or If-None-Match: * that no longer holds is answered 412. No
// registry here honours them (distribution 2.8 and go-containerregistry
// ignore both), so this is the registry the compare-and-swap path runs on.
type casRegistry struct {
	inner    http.Handler
	mu       sync.Mutex // one conditional PUT at a time: check and write are atomic
	refused  atomic.Int64
	dropNext atomic.Bool // revert the next PUT to a sha256- tag once, as a racing writer would
	// The first reads of a sha256- tag wait until this many have
	// arrived, so that that many writers surely read one version.
	barrier struct {
		sync.Mutex
		left int
		all  chan struct{}
	}
}

// holdReads makes the next n reads of a sha256- tag wait for each other.
func (c *casRegistry) holdReads(n int) {
	c.barrier.Lock()
	defer c.barrier.Unlock()
	c.barrier.left, c.barrier.all = n, make(chan struct{})
}

func (c *casRegistry) await() {
	c.barrier.Lock()
	if c.barrier.left == 0 {
		c.barrier.Unlock()
		return
	}
	c.barrier.left--
	if c.barrier.left == 0 {
		close(c.barrier.all)
	}
	all := c.barrier.all
	c.barrier.Unlock()
	<-all
}

func (c *casRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isTag := strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256:")
	switch {
	case isTag && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		if strings.Contains(r.URL.Path, "/manifests/sha256-") {
			c.await()
		}
		rec := c.record(r.Method, r.URL.Path, r.Header.Get("Accept"), nil, "")
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if d := rec.Header().Get("Docker-Content-Digest"); rec.Code == http.StatusOK && d != "" {
			w.Header().Set("ETag", `"`+d+`"`)
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	case isTag && r.Method == http.MethodPut:
		c.mu.Lock()
		defer c.mu.Unlock()
		cur := c.record(http.MethodGet, r.URL.Path, "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json", nil, "")
		etag := ""
		if cur.Code == http.StatusOK {
			etag = `"` + cur.Header().Get("Docker-Content-Digest") + `"`
		}
		if im := r.Header.Get("If-Match"); im != "" && im != etag || r.Header.Get("If-None-Match") == "*" && etag != "" {
			c.refused.Add(1)
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		rec := c.record(http.MethodPut, r.URL.Path, "", body, r.Header.Get("Content-Type"))
		if cur.Code == http.StatusOK && strings.Contains(r.URL.Path, "/manifests/sha256-") && c.dropNext.CompareAndSwap(true, false) {
			// A writer that read the index before this PUT writes its
			// stale copy back after it.
			c.record(http.MethodPut, r.URL.Path, "", cur.Body.Bytes(), cur.Header().Get("Content-Type"))
		}
		w.WriteHeader(rec.Code)
	default:
		c.inner.ServeHTTP(w, r)
	}
}

func (c *casRegistry) record(method, path, accept string, body []byte, ct string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(string(body)))
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	rec := httptest.NewRecorder()
	c.inner.ServeHTTP(rec, req)
	return rec
}

func newCASRegistry(t *testing.T) (string, *casRegistry) {
	t.Helper()
	c := &casRegistry{inner: registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(false))}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), c
}

// TestAttachConcurrentWriters: writers attaching to one image at the same
// time all end up listed, on every registry: with the referrers API (the
// registry lists them), on the tag-schema fallback of registries that
// ignore conditional PUTs (each writer reads its entry back and adds it
// again when another writer's stale copy dropped it), and on one that
// honours If-Match (the slower writer is refused and reads again).
func TestAttachConcurrentWriters(t *testing.T) {
	casHost, cas := newCASRegistry(t)
	regs := append(ocitest.Registries(t), ocitest.Registry{Name: "conditional-put", Host: casHost})
	for _, reg := range regs {
		t.Run(reg.Name, func(t *testing.T) {
			const writers = 4
			img := ocitest.PushImage(t, reg.Host, ocitest.RandomRepo("race"), "v1")
			if reg.Host == casHost {
				cas.holdReads(writers)
			}
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for i := range writers {
				wg.Go(func() {
					_, errs[i] = client(t, reg.Host).Attach(context.Background(), img, fakeBundle(t, 100+i))
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("writer %d: %v", i, err)
				}
			}
			found, err := client(t, reg.Host).Evidence(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != writers {
				t.Fatalf("%d of %d concurrently attached bundles listed", len(found), writers)
			}
		})
	}
	if cas.refused.Load() == 0 {
		t.Error("no conditional PUT was refused: the writers read one version of the index and all wrote")
	}
}

// TestAttachRepairsDroppedEntry: a writer that read the fallback index
// before custody wrote it writes its stale copy back just after, on a
// registry that checks no condition. custody reads the index back, finds
// its entry gone, and adds it again.
func TestAttachRepairsDroppedEntry(t *testing.T) {
	host, cas := newCASRegistry(t)
	c := client(t, host)
	img := ocitest.PushImage(t, host, "app", "v1")
	if _, err := c.Attach(context.Background(), img, fakeBundle(t, 1)); err != nil {
		t.Fatal(err)
	}
	cas.dropNext.Store(true)
	if _, err := c.Attach(context.Background(), img, fakeBundle(t, 2)); err != nil {
		t.Fatal(err)
	}
	if cas.dropNext.Load() {
		t.Fatal("the stale write never happened")
	}
	found, err := c.Evidence(context.Background(), img)
	if err != nil || len(found) != 2 {
		t.Fatalf("after a dropped entry: %d bundles, %v; want 2", len(found), err)
	}
}

// TestAttachRefusesForeignFallbackTag: a sha256-HEX tag that is not an
// index is never overwritten.
func TestAttachRefusesForeignFallbackTag(t *testing.T) {
	host := ocitest.InProcess(t, false)
	img := ocitest.PushImage(t, host, "app", "v1")
	ocitest.PushTag(t, host, "app", "sha256-"+img.Hex(), []ocitest.Layer{{MediaType: "text/plain", Blob: []byte("mine")}})
	_, err := client(t, host).Attach(context.Background(), img, fakeBundle(t, 1))
	if err == nil || !strings.Contains(err.Error(), "not an OCI image index") {
		t.Fatalf("Attach over a foreign sha256- tag: %v", err)
	}
}

// TestTLSRegistryWithCABundle: a registry over TLS whose CA is given as the
// CA bundle (--registry-ca) takes attachments (the fallback index written
// over TLS too) and serves them back; without the bundle it is refused.
func TestTLSRegistryWithCABundle(t *testing.T) {
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := oci.New(oci.Options{CAFile: writeFile(t, "ca.pem", string(ca)), ConfigPath: writeFile(t, "c.json", "{}")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(host + "/app:v1")
	if err := remote.Write(tag, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	ref := oci.Ref{Registry: host, Repository: "app", Tag: "v1"}
	ctx := context.Background()
	if _, err := c.Attach(ctx, ref, fakeBundle(t, 1)); err != nil {
		t.Fatalf("Attach over TLS: %v", err)
	}
	found, err := c.Evidence(ctx, ref)
	if err != nil || len(found) != 1 {
		t.Fatalf("Evidence over TLS: %d, %v", len(found), err)
	}
	if _, err := client(t).Evidence(ctx, ref); err == nil || !strings.Contains(err.Error(), "--registry-ca") {
		t.Fatalf("without the CA bundle: %v", err)
	}
}
