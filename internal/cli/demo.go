package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

const demoMain = `package main

import "fmt"

func main() { fmt.Println("hello from a build with a chain of custody") }
`

func newDemoCmd(s *streams) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Build a sample program with provenance, verify it, tamper with it, and watch verification refuse it",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			return runDemo(c.Context(), s, keep)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory")
	return c
}

func runDemo(ctx context.Context, s *streams, keep bool) error {
	w := s.out
	dir, err := os.MkdirTemp("", "custody-demo-")
	if err != nil {
		return usageErr(err, "")
	}
	if keep {
		fmt.Fprintf(w, "working in %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	step := func(format string, a ...any) { fmt.Fprintf(w, "\n==> "+format+"\n", a...) }

	step("writing a sample Go program")
	src := filepath.Join(dir, "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return usageErr(err, "")
	}
	files := map[string]string{
		"go.mod":     "module example.com/hello\n\ngo 1.22\n",
		"main.go":    demoMain,
		".gitignore": "dist/\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return usageErr(err, "")
		}
	}
	if _, err := exec.LookPath("git"); err == nil {
		step("committing it to a git repository (the provenance records the commit)")
		for _, args := range [][]string{
			{"init", "-q", "-b", "main"},
			{"add", "."},
			{"-c", "user.name=custody demo", "-c", "user.email=demo@custody.invalid", "commit", "-q", "-m", "sample"},
		} {
			cmd := childenv.Command(ctx, "git", args...)
			cmd.Dir = src
			if out, err := cmd.CombinedOutput(); err != nil {
				return usageErr(fmt.Errorf("git %s: %v: %s", args[0], err, out), "")
			}
		}
	} else {
		fmt.Fprintln(w, "    (git is not installed: the source is recorded as a file:// URL)")
	}

	step("generating an ECDSA P-256 signing key, encrypted at rest")
	pwBytes := make([]byte, 16)
	if _, err := rand.Read(pwBytes); err != nil {
		return usageErr(err, "")
	}
	pw := []byte(hex.EncodeToString(pwBytes))
	keyPath, pubPath, err := signer.WriteKeyPair(filepath.Join(dir, "release"), signer.ECDSAP256, pw, false)
	if err != nil {
		return usageErr(err, "")
	}
	sg, err := signer.Load(keyPath, func() ([]byte, error) { return pw, nil })
	if err != nil {
		return usageErr(err, "")
	}
	fmt.Fprintf(w, "    %s (0600), %s\n", filepath.Base(keyPath), filepath.Base(pubPath))

	goBin, err := exec.LookPath("go")
	if err != nil {
		return usageErr(errors.New("the demo builds a Go program and needs 'go' on PATH"), "install Go, or run 'go run ./cmd/custody demo'")
	}
	step("custody build --key release.key --out-dir dist -- go build -trimpath -o dist/hello .")
	wd, err := os.Getwd()
	if err != nil {
		return usageErr(err, "")
	}
	if err := os.Chdir(src); err != nil {
		return usageErr(err, "")
	}
	defer os.Chdir(wd)
	res, err := build.Run(ctx, build.Options{
		Command: []string{goBin, "build", "-trimpath", "-o", "dist/hello", "."},
		Dir:     src,
		OutDir:  filepath.Join(src, "dist"),
		Stdout:  s.err,
		Stderr:  s.err,
	})
	if err != nil {
		return failErr(fmt.Errorf("demo build failed: %w", err), "")
	}
	artifact := filepath.Join(src, "dist", "hello")
	bundlePath := artifact + bundleSuffix
	b, err := signStatement(ctx, keySigner(sg), res.Subjects, attest.PredicateSLSAv1, res.Provenance)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(bundlePath, b, 0o644); err != nil {
		return usageErr(err, "")
	}
	fmt.Fprintf(w, "    build %s: dist/hello sha256:%s\n    signed provenance: dist/hello.sigstore.json\n", res.BuildID, res.Subjects[0].Digest["sha256"])
	ins, err := inspectBundle(b)
	if err == nil {
		printInspection(w, "dist/hello.sigstore.json", ins)
	}

	pub, err := loadPublicKey(pubPath)
	if err != nil {
		return err
	}
	tm, err := verify.PublicKeyMaterial(pub)
	if err != nil {
		return usageErr(err, "")
	}
	check := func(title string, req verify.Requirements) (*verify.Report, error) {
		step("%s", title)
		bj, err := os.ReadFile(bundlePath)
		if err != nil {
			return nil, usageErr(err, "")
		}
		rep, err := verify.Verify(ctx, bj, verify.Artifact{Path: artifact}, tm, req)
		if err != nil {
			return nil, usageErr(err, "")
		}
		printReport(w, rep)
		return rep, nil
	}
	good, err := check("custody verify --key release.pub --builder-id "+build.DefaultBuilderID+" dist/hello",
		verify.Requirements{BuilderID: build.DefaultBuilderID})
	if err != nil {
		return err
	}
	wrongBuilder, err := check("custody verify --key release.pub --builder-id https://ci.example/trusted dist/hello   (a builder we do not trust)",
		verify.Requirements{BuilderID: "https://ci.example/trusted"})
	if err != nil {
		return err
	}
	step("tampering: appending one byte to dist/hello after it was signed")
	fh, err := os.OpenFile(artifact, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return usageErr(err, "")
	}
	_, err = fh.Write([]byte{0})
	fh.Close()
	if err != nil {
		return usageErr(err, "")
	}
	tampered, err := check("custody verify --key release.pub dist/hello   (after tampering)", verify.Requirements{})
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	if good.Verified && !wrongBuilder.Verified && !tampered.Verified {
		fmt.Fprintln(w, "demo OK: the genuine artifact verified; the untrusted builder and the tampered artifact were refused")
		return nil
	}
	return failErr(errors.New("demo did not behave as expected"), "")
}
