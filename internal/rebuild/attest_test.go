package rebuild

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keySign(sg crypto.Signer) build.SignFunc {
	return func(ctx context.Context, st []byte) ([]byte, error) { return signer.SignStatement(ctx, sg, st) }
}

// builtRepo commits a build script to a new repository and builds it with
// custody's builder key: the artifact dist/NAME and its bundle beside it.
func builtRepo(t *testing.T, script string, builder crypto.Signer) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, "build.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, ".gitignore"), []byte("dist/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "init"}} {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@e"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	_, err := build.Release(context.Background(), build.Options{Command: []string{"sh", "build.sh"}, Dir: repo, OutDir: "dist"},
		build.SignOptions{Sign: keySign(builder)})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func attestOptions(t *testing.T, artifact string, builder, rebuilder crypto.Signer) AttestOptions {
	t.Helper()
	tm, err := verify.PublicKeyMaterial(builder.Public())
	if err != nil {
		t.Fatal(err)
	}
	return AttestOptions{
		Artifact: artifact,
		Bundle:   artifact + build.BundleSuffix,
		Trust:    tm,
		OpenKey:  func() (crypto.Signer, func(), error) { return rebuilder, func() {}, nil },
		// A shell build records every toolchain on PATH; the sandbox may
		// not see those installed in a home directory.
		Rebuild: Options{AllowToolchainMismatch: true},
	}
}

func TestAttest(t *testing.T) {
	builder, rebuilder := newKey(t), newKey(t)
	repo := builtRepo(t, "mkdir -p dist\necho same > dist/app\n", builder)
	app := filepath.Join(repo, "dist", "app")
	opts := attestOptions(t, app, builder, rebuilder)
	opts.Rebuild.OutDir = "dist"
	rep, err := Attest(context.Background(), opts)
	if errors.Is(err, build.ErrHermeticUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Matched || rep.Attestation != app+AttestationSuffix || len(rep.Subjects) != 1 || rep.Subjects[0].Status != attest.RebuildMatch {
		t.Fatalf("report = %+v", rep)
	}
	// The attestation verifies with the rebuilder's key and says it matched.
	b, err := os.ReadFile(rep.Attestation)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := verify.PublicKeyMaterial(rebuilder.Public())
	if err != nil {
		t.Fatal(err)
	}
	vr, err := verify.Verify(context.Background(), b, verify.Artifact{Path: app}, tm, verify.Requirements{PredicateType: attest.PredicateRebuild})
	if err != nil || !vr.Verified {
		t.Fatalf("attestation does not verify: %v %+v", err, vr)
	}
	pred, err := attest.ParseRebuild(vr.Statement.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	if !pred.Matched || pred.Rebuilder.ID != DefaultRebuilderID || pred.Rebuilder.KeyID != signer.KeyID(rebuilder.Public()) {
		t.Errorf("predicate = %+v", pred)
	}

	// A second run refuses to replace it, unless forced.
	if _, err := Attest(context.Background(), opts); !errors.Is(err, ErrAttestationExists) {
		t.Errorf("second run: err = %v, want ErrAttestationExists", err)
	}
}

func TestAttestRefuses(t *testing.T) {
	builder, rebuilder := newKey(t), newKey(t)
	repo := builtRepo(t, "mkdir -p dist\ndate +%s%N > dist/app\n", builder)
	app := filepath.Join(repo, "dist", "app")
	ctx := context.Background()

	// The builder's own key is not an independent rebuilder, whether it
	// opens first or beside the rebuild; nothing is written.
	for _, unattended := range []bool{false, true} {
		opts := attestOptions(t, app, builder, builder)
		opts.KeyUnattended = unattended
		if _, err := Attest(ctx, opts); !errors.Is(err, ErrNotIndependent) {
			t.Errorf("unattended %v: err = %v, want ErrNotIndependent", unattended, err)
		}
	}
	// A key that does not open stops everything with its own error.
	keyErr := errors.New("wrong password")
	opts := attestOptions(t, app, builder, rebuilder)
	opts.OpenKey = func() (crypto.Signer, func(), error) { return nil, func() {}, keyErr }
	if _, err := Attest(ctx, opts); !errors.Is(err, keyErr) {
		t.Errorf("key error: err = %v", err)
	}
	// Provenance that does not verify with the trust given.
	opts = attestOptions(t, app, rebuilder, rebuilder)
	if _, err := Attest(ctx, opts); !errors.Is(err, ErrOriginalUnverified) {
		t.Errorf("wrong builder key: err = %v, want ErrOriginalUnverified", err)
	}
	if _, err := os.Stat(app + AttestationSuffix); err == nil {
		t.Fatal("a refused rebuild wrote an attestation")
	}

	// A mismatch is a report, not an error, and is recorded.
	opts = attestOptions(t, app, builder, rebuilder)
	opts.Bundle, opts.Artifact = app+build.BundleSuffix, "" // the artifact is the bundle's subject
	rep, err := Attest(ctx, opts)
	if errors.Is(err, build.ErrHermeticUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched || rep.Subjects[0].Status != attest.RebuildMismatch || rep.Attestation != app+AttestationSuffix {
		t.Fatalf("report = %+v", rep)
	}
	if !strings.HasPrefix(rep.Original.SourceURI, "git+file://") {
		t.Errorf("original = %+v", rep.Original)
	}
	if _, err := os.Stat(rep.Attestation); err != nil {
		t.Errorf("the mismatch was not recorded: %v", err)
	}
}
