package oci

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzAddToFallback: whatever a registry holds under a sha256-HEX tag,
// adding a referrer to it either fails with an error or leaves an OCI
// index that lists the referrer and every referrer it listed before;
// nothing panics, and nothing but an index is written over the tag.
func FuzzAddToFallback(f *testing.F) {
	add := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hashOf([]byte("referrer")), Size: 8, ArtifactType: BundleMediaType}
	other := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("1", 64) + `","size":3}`
	for _, seed := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + other + `]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + other + `,` + other + `]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`,
		`{"schemaVersion":1}`, `null`, `[]`, `{`, "",
	} {
		f.Add([]byte(seed))
	}
	var mu sync.Mutex
	var held []byte // what the tag holds; nil: no such tag
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == "/v2/":
		case r.Method == http.MethodGet && held == nil:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodGet:
			w.Header().Set("Content-Type", string(types.OCIImageIndex))
			w.Write(held)
		case r.Method == http.MethodPut:
			held, _ = io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
		}
	}))
	f.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := New(Options{Insecure: []string{host}, ConfigPath: writeTestFile(f, `{"auths":{}}`)})
	if err != nil {
		f.Fatal(err)
	}
	c.settle = 0
	repo, err := name.NewRepository(host+"/app", name.Insecure)
	if err != nil {
		f.Fatal(err)
	}
	h, err := c.registryHTTP(context.Background(), repo)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, index []byte) {
		mu.Lock()
		held = slices.Clone(index)
		mu.Unlock()
		var before v1.IndexManifest
		wasIndex := json.Unmarshal(index, &before) == nil && before.SchemaVersion == 2 && before.MediaType == types.OCIImageIndex &&
			!slices.ContainsFunc(before.Manifests, func(d v1.Descriptor) bool {
				_, err := v1.NewHash(d.Digest.String())
				return err != nil
			})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err = c.addToFallback(ctx, h, "sha256-"+strings.Repeat("a", 64), add)
		if ctx.Err() != nil {
			t.Fatalf("took too long on %q: %v", index, err)
		}
		mu.Lock()
		after := slices.Clone(held)
		mu.Unlock()
		if !wasIndex {
			if err == nil || string(after) != string(index) {
				t.Fatalf("a tag that is no index: err %v, tag rewritten %t", err, string(after) != string(index))
			}
			return
		}
		if err != nil {
			if len(before.Manifests) < MaxReferrers {
				t.Fatalf("adding to an index of %d: %v", len(before.Manifests), err)
			}
			return
		}
		var got v1.IndexManifest
		if json.Unmarshal(after, &got) != nil || got.SchemaVersion != 2 || got.MediaType != types.OCIImageIndex {
			t.Fatalf("wrote %q, not an OCI index", after)
		}
		for _, d := range append(before.Manifests, add) {
			if !slices.ContainsFunc(got.Manifests, func(g v1.Descriptor) bool { return g.Digest == d.Digest }) {
				t.Fatalf("index lost %s", d.Digest)
			}
		}
	})
}

func writeTestFile(t testing.TB, content string) string {
	t.Helper()
	p := t.TempDir() + "/config.json"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
