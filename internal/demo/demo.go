// Package demo is custody's tour (`custody demo`): it writes a sample Go
// program, commits it, builds it with SLSA provenance
// (https://slsa.dev/spec/v1.0/provenance) signed into a Sigstore bundle
// with a fresh encrypted key, verifies it, then shows verification
// refusing a builder it does not trust and the artifact after tampering.
package demo

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

const mainGo = `package main

import "fmt"

func main() { fmt.Println("hello from a build with a chain of custody") }
`

// UntrustedBuilder is the builder the second verification requires, which
// did not build the sample.
const UntrustedBuilder = "https://ci.example/trusted"

// Progress is told what the demo does as it does it. Its first build can
// take minutes (Go compiles its standard library into an empty build
// cache), so a caller shows each step as it starts.
type Progress interface {
	// Step starts a step; title is the custody command it stands for or
	// what it does.
	Step(title string)
	// Note says one line about the current step.
	Note(text string)
	// Signed shows a bundle the step signed, written as name.
	Signed(name string, bundle []byte)
	// Verified shows a verification's report.
	Verified(rep *verify.Report)
}

// Options of Run.
type Options struct {
	// Dir is an empty directory the demo works in (required); the caller
	// removes it.
	Dir string
	// Progress narrates the tour (nil: nothing is told).
	Progress Progress
	// BuildOutput receives the build command's output (nil: discarded).
	BuildOutput io.Writer
	// StillBuilding is how often a Note says the build still runs
	// (default 15s).
	StillBuilding time.Duration
}

// Result are the three verifications of the tour.
type Result struct {
	// Good requires the builder that built the artifact: it verifies.
	Good *verify.Report
	// WrongBuilder requires UntrustedBuilder: it is refused.
	WrongBuilder *verify.Report
	// Tampered checks the artifact after a byte was appended: refused.
	Tampered *verify.Report
}

// OK reports whether verification behaved as the tour shows: the genuine
// artifact verified, the untrusted builder and the tampered artifact were
// refused.
func (r *Result) OK() bool {
	return r.Good.Verified && !r.WrongBuilder.Verified && !r.Tampered.Verified
}

// Errors of Run: ErrNoGo when Go is not installed; errors that wrap
// ErrFailed when the demo's build or signature failed. Other errors are
// the machine's (files, git).
var (
	ErrNoGo   = errors.New("the demo builds a Go program and needs 'go' on PATH")
	ErrFailed = errors.New("demo failed")
)

// failure marks an error of the demo itself (errors.Is ErrFailed) and
// keeps its message.
type failure struct{ err error }

func (f *failure) Error() string        { return f.err.Error() }
func (f *failure) Unwrap() error        { return f.err }
func (f *failure) Is(target error) bool { return target == ErrFailed }

// tour is one run of the demo.
type tour struct {
	Options
	src      string // the sample's source tree
	artifact string // dist/hello
	bundle   string // dist/hello.sigstore.json
}

// Run runs the tour in o.Dir and returns its verifications; an error
// means the tour could not be completed.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Progress == nil {
		o.Progress = silent{}
	}
	if o.StillBuilding <= 0 {
		o.StillBuilding = 15 * time.Second
	}
	t := &tour{Options: o, src: filepath.Join(o.Dir, "hello")}
	t.artifact = filepath.Join(t.src, "dist", "hello")
	t.bundle = t.artifact + ".sigstore.json"
	if err := t.writeSource(ctx); err != nil {
		return nil, err
	}
	sg, pub, err := t.generateKey()
	if err != nil {
		return nil, err
	}
	if err := t.buildAndSign(ctx, sg); err != nil {
		return nil, err
	}
	return t.verifyAll(ctx, pub)
}

// writeSource writes the sample program and commits it when git is
// installed (the provenance records the commit).
func (t *tour) writeSource(ctx context.Context) error {
	t.Progress.Step("writing a sample Go program")
	if err := os.MkdirAll(t.src, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"go.mod":     "module example.com/hello\n\ngo 1.22\n",
		"main.go":    mainGo,
		".gitignore": "dist/\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(t.src, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Progress.Note("(git is not installed: the source is recorded as a file:// URL)")
		return nil
	}
	t.Progress.Step("committing it to a git repository (the provenance records the commit)")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "."},
		{"-c", "user.name=custody demo", "-c", "user.email=demo@custody.invalid", "commit", "-q", "-m", "sample"},
	} {
		cmd := childenv.Command(ctx, "git", args...)
		cmd.Dir = t.src
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, out)
		}
	}
	return nil
}

// generateKey writes an encrypted ECDSA P-256 key pair with a random
// password and opens it.
func (t *tour) generateKey() (crypto.Signer, crypto.PublicKey, error) {
	t.Progress.Step("generating an ECDSA P-256 signing key, encrypted at rest")
	pwBytes := make([]byte, 16)
	if _, err := rand.Read(pwBytes); err != nil {
		return nil, nil, err
	}
	pw := []byte(hex.EncodeToString(pwBytes))
	keyPath, pubPath, err := signer.WriteKeyPair(filepath.Join(t.Dir, "release"), signer.ECDSAP256, pw, false)
	if err != nil {
		return nil, nil, err
	}
	sg, err := signer.Load(keyPath, func() ([]byte, error) { return pw, nil })
	if err != nil {
		return nil, nil, err
	}
	t.Progress.Note(fmt.Sprintf("%s (0600), %s", filepath.Base(keyPath), filepath.Base(pubPath)))
	return sg, sg.Public(), nil
}

// buildAndSign builds the sample with provenance and signs it, as custody
// build does.
func (t *tour) buildAndSign(ctx context.Context, sg crypto.Signer) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return ErrNoGo
	}
	t.Progress.Step("custody build --key release.key --out-dir dist -- go build -trimpath -o dist/hello .")
	t.Progress.Note("(the first run can take minutes: Go compiles its standard library for -trimpath into its build cache; later runs take seconds)")
	stop := t.noteWhileBuilding()
	res, err := build.Run(ctx, build.Options{
		Command: []string{goBin, "build", "-trimpath", "-o", "dist/hello", "."},
		Dir:     t.src,
		OutDir:  filepath.Join(t.src, "dist"),
		Stdout:  t.BuildOutput,
		Stderr:  t.BuildOutput,
	})
	stop()
	if err != nil {
		return &failure{fmt.Errorf("demo build failed: %w", err)}
	}
	sign := func(ctx context.Context, payload []byte) ([]byte, error) {
		b, err := signer.SignStatement(ctx, sg, payload)
		if err != nil {
			return nil, &failure{fmt.Errorf("couldn't sign: %w", err)}
		}
		return b, nil
	}
	b, err := build.SignStatement(ctx, sign, res.Subjects, attest.PredicateSLSAv1, res.Provenance)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(t.bundle, b, 0o644); err != nil {
		return err
	}
	t.Progress.Note(fmt.Sprintf("build %s: dist/hello sha256:%s", res.BuildID, res.Subjects[0].Digest["sha256"]))
	t.Progress.Note("signed provenance: dist/hello.sigstore.json")
	t.Progress.Signed("dist/hello.sigstore.json", b)
	return nil
}

// noteWhileBuilding notes every StillBuilding that the build still runs,
// until the returned function is called.
func (t *tour) noteWhileBuilding() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(t.StillBuilding)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t.Progress.Note(fmt.Sprintf("still building after %s ...", time.Since(start).Round(time.Second)))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// verifyAll verifies the artifact as built, against a builder it was not
// built by, and after tampering.
func (t *tour) verifyAll(ctx context.Context, pub crypto.PublicKey) (*Result, error) {
	tm, err := verify.PublicKeyMaterial(pub)
	if err != nil {
		return nil, err
	}
	check := func(title string, req verify.Requirements) (*verify.Report, error) {
		t.Progress.Step(title)
		bj, err := os.ReadFile(t.bundle)
		if err != nil {
			return nil, err
		}
		rep, err := verify.Verify(ctx, bj, verify.Artifact{Path: t.artifact}, tm, req)
		if err != nil {
			return nil, err
		}
		t.Progress.Verified(rep)
		return rep, nil
	}
	var r Result
	if r.Good, err = check("custody verify --key release.pub --builder-id "+build.DefaultBuilderID+" dist/hello",
		verify.Requirements{BuilderID: build.DefaultBuilderID}); err != nil {
		return nil, err
	}
	if r.WrongBuilder, err = check("custody verify --key release.pub --builder-id "+UntrustedBuilder+" dist/hello   (a builder we do not trust)",
		verify.Requirements{BuilderID: UntrustedBuilder}); err != nil {
		return nil, err
	}
	t.Progress.Step("tampering: appending one byte to dist/hello after it was signed")
	if err := appendByte(t.artifact); err != nil {
		return nil, err
	}
	if r.Tampered, err = check("custody verify --key release.pub dist/hello   (after tampering)", verify.Requirements{}); err != nil {
		return nil, err
	}
	return &r, nil
}

func appendByte(path string) error {
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fh.Write([]byte{0})
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// silent is the Progress of a caller that wants none.
type silent struct{}

func (silent) Step(string)             {}
func (silent) Note(string)             {}
func (silent) Signed(string, []byte)   {}
func (silent) Verified(*verify.Report) {}
