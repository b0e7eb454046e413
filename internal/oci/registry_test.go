package oci_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/internal/oci/ocitest"
)

// fakeBundle is shaped like a Sigstore bundle; the oci package only stores
// and returns bytes (verification is package verify's job).
func fakeBundle(t testing.TB, n int) []byte {
	t.Helper()
	st, _ := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1", "n": n})
	b, err := json.Marshal(map[string]any{
		"mediaType":    oci.BundleMediaType,
		"dsseEnvelope": map[string]any{"payloadType": "application/vnd.in-toto+json", "payload": base64.StdEncoding.EncodeToString(st), "signatures": []any{map[string]string{"sig": "AA=="}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func client(t testing.TB, insecure ...string) *oci.Client {
	t.Helper()
	c, err := oci.New(oci.Options{Insecure: insecure, ConfigPath: writeFile(t, "config.json", "{}")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRegistries runs attach, evidence and resolve against every registry:
// in-process with and without the referrers API, and the real
// docker-registry 2.8 scripts/test starts (and CUSTODY_TEST_REGISTRY_REFERRERS).
func TestRegistries(t *testing.T) {
	for _, reg := range ocitest.Registries(t) {
		t.Run(reg.Name, func(t *testing.T) {
			ctx := context.Background()
			c := client(t, reg.Host)
			repo := ocitest.RandomRepo("attach")
			img := ocitest.PushImage(t, reg.Host, repo, "v1")

			// A tag resolves to the digest that was pushed.
			byTag := img
			byTag.Digest = ""
			got, err := c.Resolve(ctx, byTag)
			if err != nil || got.Digest != img.Digest {
				t.Fatalf("Resolve(%s) = %s, %v; want %s", byTag, got.Digest, err, img.Digest)
			}

			// Nothing attached yet: no evidence, no error.
			found, err := c.Evidence(ctx, img)
			if err != nil || len(found) != 0 {
				t.Fatalf("Evidence before attach = %d, %v", len(found), err)
			}

			b1, b2 := fakeBundle(t, 1), fakeBundle(t, 2)
			d1, err := c.Attach(ctx, byTag, b1)
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			// The same bundle twice is stored once.
			if again, err := c.Attach(ctx, img, b1); err != nil || again != d1 {
				t.Fatalf("second Attach = %s, %v; want %s", again, err, d1)
			}
			if _, err := c.Attach(ctx, img, b2); err != nil {
				t.Fatalf("Attach: %v", err)
			}
			found, err = c.Evidence(ctx, img)
			if err != nil {
				t.Fatalf("Evidence: %v", err)
			}
			if len(found) != 2 {
				t.Fatalf("Evidence found %d bundles, want 2", len(found))
			}
			seen := map[string]bool{}
			for _, f := range found {
				if f.Format != oci.FormatReferrer {
					t.Errorf("format %s, want referrer", f.Format)
				}
				seen[string(f.Bundle)] = true
			}
			if !seen[string(b1)] || !seen[string(b2)] {
				t.Error("Evidence did not return the attached bundles byte for byte")
			}
			checkFallbackTag(t, reg, img)
		})
	}
}

// checkFallbackTag: without the referrers API the referrers are listed in
// the sha256-HEX tag index; with it, that tag is not written.
func checkFallbackTag(t *testing.T, reg ocitest.Registry, img oci.Ref) {
	t.Helper()
	tag, err := name.NewTag(fmt.Sprintf("%s/%s:sha256-%s", img.Registry, img.Repository, img.Hex()), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(tag)
	if reg.Referrers && err == nil {
		t.Error("fallback tag written on a registry with the referrers API")
	}
	if !reg.Referrers && err != nil {
		t.Errorf("fallback tag: %v", err)
	}
}

func TestResolveUnknownTag(t *testing.T) {
	host := ocitest.InProcess(t, true)
	c := client(t, host)
	_, err := c.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "nope", Tag: "v9"})
	var e *oci.Error
	if !errors.As(err, &e) || e.Registry != host || !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("Resolve of a missing tag = %v, want *oci.Error naming %s wrapping ErrNotFound", err, host)
	}
	t.Log(err)
}

func TestAttachRefusesNonBundle(t *testing.T) {
	host := ocitest.InProcess(t, true)
	img := ocitest.PushImage(t, host, "app", "v1")
	for _, b := range []string{"", "[]", `{"a":1}`, `{"mediaType":"x"}`} {
		if _, err := client(t, host).Attach(context.Background(), img, []byte(b)); !errors.Is(err, oci.ErrNotBundle) {
			t.Errorf("Attach(%q) = %v, want ErrNotBundle", b, err)
		}
	}
}
