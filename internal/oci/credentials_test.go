package oci_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/internal/oci/ocitest"
)

// TestRealRegistryCredentials: a real docker-registry 2.8 that requires a
// login. Credentials from a Docker config's auths, and from a credential
// helper it names, let custody attach and read; none, or wrong ones, get a
// one-line 401 naming the registry that never shows the secret.
func TestRealRegistryCredentials(t *testing.T) {
	const user, secret = "ci", "Real-Registry-s3cret"
	host := ocitest.DockerRegistryWithAuth(t, user, secret)
	ctx := context.Background()

	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: user, Password: secret})); err != nil {
		t.Fatalf("pushing with the registry's login: %v", err)
	}
	ref := oci.Ref{Registry: host, Repository: "team/app", Tag: "v1"}
	withConfig := func(cfg string) *oci.Client {
		t.Helper()
		c, err := oci.New(oci.Options{ConfigPath: writeFile(t, "config.json", cfg), Insecure: []string{host}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
	c := withConfig(`{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`)
	if _, err := c.Attach(ctx, ref, fakeBundle(t, 1)); err != nil {
		t.Fatalf("Attach with the config's credentials: %v", err)
	}
	if found, err := c.Evidence(ctx, ref); err != nil || len(found) != 1 {
		t.Fatalf("Evidence with the config's credentials: %d, %v", len(found), err)
	}

	// A credential helper, run as docker and cosign run it.
	dir := t.TempDir()
	script := "#!/bin/sh\nread url\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"" + user + "\",\"Secret\":\"" + secret + "\"}' \"$url\"\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-custodyreal"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if found, err := withConfig(`{"credHelpers":{"`+host+`":"custodyreal"}}`).Evidence(ctx, ref); err != nil || len(found) != 1 {
		t.Fatalf("Evidence through a credential helper: %d, %v", len(found), err)
	}

	wrong := base64.StdEncoding.EncodeToString([]byte(user + ":not-" + secret))
	for what, cfg := range map[string]string{
		"no credentials":    `{"auths":{}}`,
		"wrong credentials": `{"auths":{"` + host + `":{"auth":"` + wrong + `"}}}`,
	} {
		_, err := withConfig(cfg).Evidence(ctx, ref)
		wantRegistryError(t, err, host, "HTTP 401")
		if !strings.Contains(err.Error(), "check the credentials") {
			t.Errorf("%s: %v; want a hint to check the credentials", what, err)
		}
		for _, s := range []string{secret, auth, wrong} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: the error shows a credential: %v", what, err)
			}
		}
		if _, err := withConfig(cfg).Attach(ctx, ref, fakeBundle(t, 2)); err == nil {
			t.Errorf("%s: Attach succeeded", what)
		}
	}
}
