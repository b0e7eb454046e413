package oci_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/oci"
)

// What a hostile registry can do, each tried against the client. These
// registries are written here because a real one cannot be made to lie.

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// fakeRegistry answers /v2/ and the routes given ("/v2/app/manifests/v1"),
// 404 for everything else, and counts requests.
type fakeRegistry struct {
	routes map[string]http.HandlerFunc
	hits   atomic.Int64
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if r.URL.Path == "/v2/" {
		return
	}
	if h, ok := f.routes[r.URL.Path]; ok {
		h(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"nope"}]}`)
}

func serve(t *testing.T, routes map[string]http.HandlerFunc) (string, *fakeRegistry) {
	t.Helper()
	f := &fakeRegistry{routes: routes}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), f
}

func body(ct string, b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Write(b)
	}
}

// wantRegistryError checks err is a one-line *oci.Error naming host.
func wantRegistryError(t *testing.T, err error, host, says string) {
	t.Helper()
	var e *oci.Error
	if !errors.As(err, &e) || e.Registry != host {
		t.Fatalf("error = %v, want *oci.Error naming %s", err, host)
	}
	if !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error = %q, want one line saying %q", err, says)
	}
}

var subject = "sha256:" + strings.Repeat("ab", 32)

func TestHostileHugeManifest(t *testing.T) {
	for _, size := range []int{oci.MaxManifestBytes + 1, 64 << 20} {
		big := []byte(`{"mediaType":"` + ociManifest + `","x":"` + strings.Repeat("a", size) + `"}`)
		host, _ := serve(t, map[string]http.HandlerFunc{"/v2/app/manifests/v1": body(ociManifest, big)})
		_, err := client(t, host).Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
		if !errors.Is(err, oci.ErrTooLarge) {
			t.Fatalf("manifest of %d bytes: %v, want ErrTooLarge", size, err)
		}
		wantRegistryError(t, err, host, "more than custody reads")
	}
}

// referrerSet serves subject's referrers list (API) naming one manifest
// whose bundle blob is bundle; tweak may change the manifest first.
func referrerSet(t *testing.T, subj string, bundle []byte, tweak func(m map[string]any)) (map[string]http.HandlerFunc, string) {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2, "mediaType": ociManifest, "artifactType": oci.BundleMediaType,
		"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha([]byte("{}")), "size": 2},
		"layers":  []any{map[string]any{"mediaType": oci.BundleMediaType, "digest": sha(bundle), "size": len(bundle)}},
		"subject": map[string]any{"mediaType": ociManifest, "digest": subj, "size": 10},
	}
	if tweak != nil {
		tweak(m)
	}
	raw, _ := json.Marshal(m)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": []any{
		map[string]any{"mediaType": ociManifest, "digest": sha(raw), "size": len(raw), "artifactType": oci.BundleMediaType},
	}})
	return map[string]http.HandlerFunc{
		"/v2/app/referrers/" + subject:    body(ociIndex, idx),
		"/v2/app/manifests/" + sha(raw):   body(ociManifest, raw),
		"/v2/app/blobs/" + sha(bundle):    body("application/octet-stream", bundle),
		"/v2/app/manifests/" + sha(idx):   body(ociIndex, idx),
		"/v2/app/manifests/sha256-x.none": nil,
	}, sha(raw)
}

func TestHostileEvidenceBaseline(t *testing.T) {
	b := fakeBundle(t, 1)
	routes, _ := referrerSet(t, subject, b, nil)
	host, _ := serve(t, routes)
	found, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
	if err != nil || len(found) != 1 || string(found[0].Bundle) != string(b) {
		t.Fatalf("Evidence = %v, %v; want the one bundle", found, err)
	}
}

func TestHostileLiesAboutDigests(t *testing.T) {
	b := fakeBundle(t, 1)
	t.Run("manifest", func(t *testing.T) {
		routes, md := referrerSet(t, subject, b, nil)
		routes["/v2/app/manifests/"+md] = body(ociManifest, []byte(`{"mediaType":"`+ociManifest+`","schemaVersion":2}`))
		host, _ := serve(t, routes)
		_, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
		if err == nil {
			t.Fatal("a manifest that does not hash to its digest was accepted")
		}
		wantRegistryError(t, err, host, "does not match")
	})
	t.Run("blob", func(t *testing.T) {
		routes, _ := referrerSet(t, subject, b, nil)
		routes["/v2/app/blobs/"+sha(b)] = body("application/octet-stream", fakeBundle(t, 2))
		host, _ := serve(t, routes)
		_, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
		if err == nil {
			t.Fatal("a blob that does not hash to its digest was accepted")
		}
		wantRegistryError(t, err, host, "sha256")
	})
	t.Run("attach-subject", func(t *testing.T) {
		routes := map[string]http.HandlerFunc{"/v2/app/manifests/" + subject: body(ociManifest, []byte(`{"mediaType":"`+ociManifest+`"}`))}
		host, _ := serve(t, routes)
		_, err := client(t, host).Attach(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject}, b)
		wantRegistryError(t, err, host, "does not match")
	})
}

func TestHostileBundleTooLarge(t *testing.T) {
	b := fakeBundle(t, 1)
	routes, _ := referrerSet(t, subject, b, func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)["size"] = oci.MaxBundleBytes + 1
	})
	host, _ := serve(t, routes)
	_, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
	if !errors.Is(err, oci.ErrTooLarge) {
		t.Fatalf("Evidence = %v, want ErrTooLarge", err)
	}
}

// A referrer that names another image is not this image's evidence.
func TestHostileReferrerForOtherSubject(t *testing.T) {
	other := "sha256:" + strings.Repeat("cd", 32)
	routes, _ := referrerSet(t, other, fakeBundle(t, 1), nil)
	host, _ := serve(t, routes)
	found, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
	if err != nil || len(found) != 0 {
		t.Fatalf("Evidence = %d bundles, %v; want none", len(found), err)
	}
}

func TestHostileTooManyReferrers(t *testing.T) {
	var ds []any
	for i := 0; i <= oci.MaxReferrers; i++ {
		ds = append(ds, map[string]any{"mediaType": ociManifest, "digest": sha([]byte{byte(i), byte(i >> 8)}), "size": 1})
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": ds})
	host, _ := serve(t, map[string]http.HandlerFunc{"/v2/app/referrers/" + subject: body(ociIndex, idx)})
	_, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
	wantRegistryError(t, err, host, fmt.Sprintf("more than %d referrers", oci.MaxReferrers))
}

// A fallback tag index that lists itself (or any index) is not followed.
func TestHostileFallbackLoop(t *testing.T) {
	idx := []byte(`{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[]}`)
	self := sha(idx)
	loop, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": []any{
		map[string]any{"mediaType": ociIndex, "digest": self, "size": len(idx)},
		map[string]any{"mediaType": ociManifest, "digest": self, "size": len(idx)},
	}})
	host, f := serve(t, map[string]http.HandlerFunc{
		"/v2/app/manifests/sha256-" + strings.Repeat("ab", 32): body(ociIndex, loop),
		"/v2/app/manifests/" + self:                            body(ociIndex, idx),
	})
	found, err := client(t, host).Evidence(context.Background(), oci.Ref{Registry: host, Repository: "app", Digest: subject})
	if err != nil || len(found) != 0 {
		t.Fatalf("Evidence = %d, %v; want none", len(found), err)
	}
	if n := f.hits.Load(); n > 12 {
		t.Fatalf("%d requests for one image: something was followed", n)
	}
}

func TestHostileHangs(t *testing.T) {
	f := &fakeRegistry{routes: map[string]http.HandlerFunc{"/v2/app/manifests/v1": func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := oci.New(oci.Options{Insecure: []string{host}, Timeout: 300 * time.Millisecond, ConfigPath: writeFile(t, "c.json", "{}")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Resolve from a registry that never answers = %v, want DeadlineExceeded", err)
	}
	wantRegistryError(t, err, host, "timeout")
	srv.CloseClientConnections()
}

// Plain HTTP is used only for hosts named insecure: elsewhere the request
// goes over TLS, and a plain-HTTP server never sees it.
func TestPlainHTTPOnlyForInsecureHosts(t *testing.T) {
	host, f := serve(t, nil)
	c, err := oci.New(oci.Options{ConfigPath: writeFile(t, "c.json", "{}")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	wantRegistryError(t, err, host, "--insecure-registry")
	if n := f.hits.Load(); n != 0 {
		t.Fatalf("plain-HTTP registry answered %d requests not named insecure", n)
	}
}

// A TLS registry redirecting to a plain-HTTP URL does not make the client
// speak plain HTTP.
func TestHostileRedirectToPlainHTTP(t *testing.T) {
	plainHost, plain := serve(t, nil)
	tlsReg := &fakeRegistry{routes: map[string]http.HandlerFunc{"/v2/app/manifests/v1": func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+plainHost+"/v2/app/manifests/v1", http.StatusTemporaryRedirect)
	}}}
	srv := httptest.NewTLSServer(tlsReg)
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	host := strings.TrimPrefix(srv.URL, "https://")
	c, err := oci.New(oci.Options{CAFile: writeFile(t, "ca.pem", string(ca)), ConfigPath: writeFile(t, "c.json", "{}")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	if err == nil {
		t.Fatal("redirect to plain HTTP followed")
	}
	if n := plain.hits.Load(); n != 0 {
		t.Fatalf("plain-HTTP server got %d requests after a redirect", n)
	}
	// Without the CA bundle the registry's certificate is not trusted.
	c2 := client(t)
	_, err = c2.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	wantRegistryError(t, err, host, "--registry-ca")
}

// Credentials from the Docker config are sent, and never appear in an
// error, even when the registry echoes them back.
func TestCredentialsNeverPrinted(t *testing.T) {
	const secret = "s3cret-Pw-never-printed"
	var gotAuth atomic.Value
	gotAuth.Store("")
	echo := func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":%q,"detail":%q}]}`, r.Header.Get("Authorization"), secret)
	}
	f := &fakeRegistry{routes: map[string]http.HandlerFunc{"/v2/app/manifests/v1": echo}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	auth := base64.StdEncoding.EncodeToString([]byte("ci:" + secret))
	cfg := writeFile(t, "config.json", `{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`)
	c, err := oci.New(oci.Options{ConfigPath: cfg, Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	wantRegistryError(t, err, host, "HTTP 401")
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), auth) {
		t.Fatalf("error shows the credential: %v", err)
	}
	if gotAuth.Load().(string) != "Basic "+auth {
		t.Fatalf("registry got Authorization %q, want the config's", gotAuth.Load())
	}
}

// Credential helpers named in the Docker config are run, as docker, cosign
// and crane run them.
func TestCredentialHelper(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nread url\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}' \"$url\"\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-custodytest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var gotAuth atomic.Value
	gotAuth.Store("")
	host, _ := serve(t, map[string]http.HandlerFunc{"/v2/app/manifests/v1": func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNotFound)
	}})
	cfg := writeFile(t, "config.json", `{"credHelpers":{"`+host+`":"custodytest"}}`)
	c, err := oci.New(oci.Options{ConfigPath: cfg, Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("helper-user:helper-secret"))
	if gotAuth.Load().(string) != want {
		t.Fatalf("registry got Authorization %q, want the helper's credentials", gotAuth.Load())
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	for _, o := range []oci.Options{
		{ConfigPath: filepath.Join(t.TempDir(), "missing.json")},
		{ConfigPath: writeFile(t, "bad.json", "{not json")},
		{CAFile: writeFile(t, "ca.pem", "no pem here")},
		{CAFile: filepath.Join(t.TempDir(), "missing.pem")},
		{Insecure: []string{"bad host/x"}},
	} {
		if _, err := oci.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// A registry that redirects to another host does not get that host the
// credentials: they are sent only to the registry they are for.
func TestRedirectDoesNotCarryCredentials(t *testing.T) {
	var otherAuth atomic.Value
	otherAuth.Store("unset")
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNotFound)
	}))
	defer other.Close()
	reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/app/manifests/v1" {
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
		}
	}))
	defer reg.Close()
	var ca []byte
	for _, s := range []*httptest.Server{reg, other} {
		ca = append(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})...)
	}
	host := strings.TrimPrefix(reg.URL, "https://")
	auth := base64.StdEncoding.EncodeToString([]byte("ci:secret"))
	c, err := oci.New(oci.Options{CAFile: writeFile(t, "ca.pem", string(ca)),
		ConfigPath: writeFile(t, "config.json", `{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	if err == nil {
		t.Fatal("Resolve succeeded")
	}
	if got := otherAuth.Load().(string); got != "" {
		t.Fatalf("the host redirected to got Authorization %q", got)
	}
}

// The digest a tag resolves to is the hash of the manifest bytes received,
// whatever Docker-Content-Digest header the registry sends with them.
func TestResolveIgnoresDigestHeader(t *testing.T) {
	man := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{},"layers":[]}`)
	host, _ := serve(t, map[string]http.HandlerFunc{"/v2/app/manifests/v1": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", subject)
		w.Header().Set("Content-Type", ociManifest)
		w.Write(man)
	}})
	got, err := client(t, host).Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"})
	if err != nil || got.Digest != sha(man) {
		t.Fatalf("Resolve = %s, %v; want %s (the hash of the bytes, not the header's %s)", got.Digest, err, sha(man), subject)
	}
}
