package cli

import (
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/custody-dev/custody/internal/oci/ocitest"
)

// scriptRegistries are the registries the scripts push images to: the real
// one scripts/test starts (docker-registry 2.8, without the referrers API)
// or a real one with the API when CUSTODY_TEST_REGISTRY_REFERRERS names it,
// else in-process ones of the same two kinds (docs/design/oci-client.md).
var scriptRegistries struct{ fallback, referrers string }

func startScriptRegistries(t *testing.T) {
	scriptRegistries.fallback = ocitest.RealOr(t, ocitest.EnvRegistry, false)
	scriptRegistries.referrers = ocitest.RealOr(t, ocitest.EnvRegistryReferrers, true)
}

// registryScriptEnv sets REGISTRY (no referrers API: the tag-schema
// fallback) and REGISTRY_REFERRERS (host:port, plain HTTP).
func registryScriptEnv(env *testscript.Env) {
	env.Setenv("REGISTRY", scriptRegistries.fallback)
	env.Setenv("REGISTRY_REFERRERS", scriptRegistries.referrers)
}

// pushImageCmd: pushimage HOST REPO TAG pushes a random image and sets
// IMAGE (oci://HOST/REPO:TAG), IMAGE_DIGEST (sha256:HEX), IMAGE_PINNED
// (oci://HOST/REPO@sha256:HEX), IMAGE_REPO (oci://HOST/REPO) and
// IMAGE_REPONAME (REPO). The repository gets a random suffix so scripts
// sharing a registry never see each other's images; REPO written =NAME is
// taken as it is (another image in a repository pushed before).
func pushImageCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: pushimage HOST REPO TAG")
	}
	repo := ocitest.RandomRepo(args[1])
	if exact, ok := strings.CutPrefix(args[1], "="); ok {
		repo = exact
	}
	ref := ocitest.PushImage(tsTB{ts}, args[0], repo, args[2])
	pinned := ref
	pinned.Tag = ""
	ref.Digest = ""
	ts.Setenv("IMAGE", ref.String())
	ts.Setenv("IMAGE_DIGEST", pinned.Digest)
	ts.Setenv("IMAGE_PINNED", pinned.String())
	ts.Setenv("IMAGE_REPO", "oci://"+ref.Registry+"/"+ref.Repository)
	ts.Setenv("IMAGE_REPONAME", ref.Repository)
}

// tsTB lets ocitest's helpers report through a testscript.
type tsTB struct{ ts *testscript.TestScript }

func (t tsTB) Helper()                   {}
func (t tsTB) Fatal(args ...any)         { t.ts.Fatalf("%v", args...) }
func (t tsTB) Fatalf(f string, a ...any) { t.ts.Fatalf(f, a...) }
