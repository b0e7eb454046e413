// Package ocitest gives tests OCI registries and images of their own: an
// in-process registry (go-containerregistry's pkg/registry, with or without
// the referrers API), the real registries scripts/test starts, and random
// images pushed to them. Nothing is pulled from the internet.
package ocitest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/oci"
)

// Environment variables scripts/test sets for the real registries it
// starts on 127.0.0.1 (host:port, plain HTTP).
const (
	// EnvRegistry: Debian's docker-registry (distribution 2.8), no
	// referrers API, so custody uses the tag-schema fallback.
	EnvRegistry = "CUSTODY_TEST_REGISTRY"
	// EnvRegistryReferrers: a registry with the referrers API. scripts/test
	// starts none (see docs/design/oci-client.md); the in-process registry
	// covers that path.
	EnvRegistryReferrers = "CUSTODY_TEST_REGISTRY_REFERRERS"
)

// Registry is one registry a test can use.
type Registry struct {
	Name      string // for t.Run
	Host      string // host:port, plain HTTP
	Referrers bool   // serves the OCI 1.1 referrers API
}

// InProcess starts go-containerregistry's registry on 127.0.0.1 for the
// test's lifetime and returns its host:port.
func InProcess(t testing.TB, referrers bool) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(discard()), registry.WithReferrersSupport(referrers)))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Registries is every registry the suite runs against: the two in-process
// ones always, the real ones when scripts/test started them.
func Registries(t testing.TB) []Registry {
	t.Helper()
	regs := []Registry{
		{Name: "inprocess-referrers", Host: InProcess(t, true), Referrers: true},
		{Name: "inprocess-fallback", Host: InProcess(t, false)},
	}
	if h := os.Getenv(EnvRegistry); h != "" {
		regs = append(regs, Registry{Name: "docker-registry-2.8", Host: h})
	}
	if h := os.Getenv(EnvRegistryReferrers); h != "" {
		regs = append(regs, Registry{Name: "referrers-api", Host: h, Referrers: true})
	}
	return regs
}

// Real returns the registry scripts/test started under env, skipping the
// test when there is none.
func Real(t testing.TB, env string) string {
	t.Helper()
	h := os.Getenv(env)
	if h == "" {
		t.Skipf("%s not set (scripts/test starts the registry)", env)
	}
	return h
}

// RandomRepo is a repository name no other test uses.
func RandomRepo(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// T is what the push helpers need of a test: testing.TB has it, and so can
// a testscript command.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// RealOr returns the real registry scripts/test started under env, or
// else starts an in-process one (with the referrers API or without).
func RealOr(t testing.TB, env string, referrers bool) string {
	if h := os.Getenv(env); h != "" {
		return h
	}
	return InProcess(t, referrers)
}

// PushImage pushes a random one-layer image to host/repo:tag over plain
// HTTP and returns its reference, pinned to the digest.
func PushImage(t T, host, repo, tag string) oci.Ref {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(context.Background())); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return oci.Ref{Registry: host, Repository: repo, Tag: tag, Digest: d.String()}
}

func discard() *log.Logger { return log.New(io.Discard, "", 0) }

// Layer is one layer of a manifest PushTag writes.
type Layer struct {
	MediaType   string
	Blob        []byte
	Annotations map[string]string
}

// PushTag pushes an OCI image manifest of the given layers (and an empty
// JSON config) to host/repo:tag over plain HTTP, the way cosign v1/v2
// store signatures and attestations under sha256-HEX.sig / .att.
func PushTag(t T, host, repo, tag string, layers []Layer) {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	man := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for i, l := range append([]Layer{{MediaType: string(types.OCIConfigJSON), Blob: []byte("{}")}}, layers...) {
		sl := static.NewLayer(l.Blob, types.MediaType(l.MediaType))
		if err := remote.WriteLayer(r, sl); err != nil {
			t.Fatalf("pushing layer: %v", err)
		}
		d, _ := sl.Digest()
		desc := v1.Descriptor{MediaType: types.MediaType(l.MediaType), Digest: d, Size: int64(len(l.Blob)), Annotations: l.Annotations}
		if i == 0 {
			man.Config = desc
		} else {
			man.Layers = append(man.Layers, desc)
		}
	}
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r.Tag(tag), rawManifest(raw)); err != nil {
		t.Fatalf("pushing %s: %v", tag, err)
	}
}

type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// DockerRegistryBin is Debian's docker-registry (distribution 2.8), which
// scripts/registry installs.
const DockerRegistryBin = "/usr/bin/docker-registry"

// DockerRegistryWithAuth starts Debian's docker-registry on 127.0.0.1 for
// the test's lifetime, requiring HTTP basic authentication as user with
// password (htpasswd, bcrypt), and returns its host:port. The test fails
// when scripts/test started the shared registry (so the binary should be
// there) and it is missing; else it skips.
func DockerRegistryWithAuth(t testing.TB, user, password string) string {
	t.Helper()
	if _, err := os.Stat(DockerRegistryBin); err != nil {
		if os.Getenv(EnvRegistry) != "" {
			t.Fatalf("%s: %v (scripts/registry installs it)", DockerRegistryBin, err)
		}
		t.Skipf("%s not installed (scripts/test installs it)", DockerRegistryBin)
	}
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s/data
auth:
  htpasswd:
    realm: custody-test
    path: %s/htpasswd
http:
  addr: %s
  secret: %s
`, dir, dir, addr, RandomRepo("s"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := childenv.Command(context.Background(), DockerRegistryBin, "serve", filepath.Join(dir, "config.yml"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case <-done:
			t.Fatalf("docker-registry exited: %s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("docker-registry did not answer on %s: %s", addr, out.String())
	return ""
}
