package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/attest"
)

// statementSigner "signs" by returning the statement itself, so tests can
// read what would have been signed; it records every statement.
type statementSigner struct {
	mu    sync.Mutex
	count int
}

func (s *statementSigner) sign(_ context.Context, st []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	return st, nil
}

func readStatement(t *testing.T, path string) *attest.Statement {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.ParseStatement(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return st
}

func TestReleaseBundlePerSubject(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"main.go": "package main\n"})
	image := "registry.example/app@sha256:" + strings.Repeat("ab", 32)
	img, err := ParseSubject(image)
	if err != nil {
		t.Fatal(err)
	}
	var ss statementSigner
	rel, err := Release(context.Background(), Options{
		Command:  sh("mkdir -p dist/sub && printf hi > dist/app && printf lib > dist/sub/lib.so"),
		Dir:      dir,
		OutDir:   "dist",
		Subjects: []attest.Subject{img},
	}, SignOptions{Sign: ss.sign, SBOM: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // subject -> provenance bundle
		"app":        filepath.Join(dir, "dist", "app"+BundleSuffix),
		"sub/lib.so": filepath.Join(dir, "dist", "sub", "lib.so"+BundleSuffix),
		img.Name:     filepath.Join(dir, "dist", SafeName(img.Name)+BundleSuffix),
	}
	if len(rel.Bundles) != len(want) || len(rel.SBOMs) != len(want) || rel.Scanned || len(rel.Scans) != 0 {
		t.Fatalf("bundles %+v, SBOMs %+v, scans %+v", rel.Bundles, rel.SBOMs, rel.Scans)
	}
	for _, b := range rel.Bundles {
		if len(b.Subjects) != 1 || want[b.Subjects[0].Name] != b.Bundle {
			t.Errorf("bundle %s signs %+v", b.Bundle, b.Subjects)
			continue
		}
		st := readStatement(t, b.Bundle)
		if st.PredicateType != attest.PredicateSLSAv1 || st.Subject[0].Name != b.Subjects[0].Name {
			t.Errorf("%s: predicate %s about %+v", b.Bundle, st.PredicateType, st.Subject)
		}
		if st := readStatement(t, EvidencePath(b.Bundle, SBOMSuffix)); st.PredicateType != attest.PredicateCycloneDX {
			t.Errorf("SBOM beside %s has predicate %s", b.Bundle, st.PredicateType)
		}
	}
	if ss.count != 2*len(want) {
		t.Errorf("signed %d statements, want %d", ss.count, 2*len(want))
	}
}

func TestReleaseOneStatement(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"main.go": "package main\n"})
	var ss statementSigner
	rel, err := Release(context.Background(), Options{
		Command: sh("mkdir -p dist && printf a > dist/a && printf b > dist/b"),
		Dir:     dir,
		OutDir:  "dist",
	}, SignOptions{Sign: ss.sign, OneStatement: true})
	if err != nil {
		t.Fatal(err)
	}
	wantPath := filepath.Join(dir, "dist", "build-"+rel.BuildID+BundleSuffix)
	if len(rel.Bundles) != 1 || rel.Bundles[0].Bundle != wantPath || len(rel.Bundles[0].Subjects) != 2 {
		t.Fatalf("bundles = %+v, want one at %s with both subjects", rel.Bundles, wantPath)
	}
	if st := readStatement(t, wantPath); len(st.Subject) != 2 {
		t.Errorf("statement subjects = %+v", st.Subject)
	}
	if ss.count != 1 || rel.SBOMs != nil {
		t.Errorf("signed %d statements, SBOMs %+v; want 1 and none", ss.count, rel.SBOMs)
	}
}

func TestReleaseRefusesBeforeBuilding(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"main.go": "package main\n"})
	marker := filepath.Join(t.TempDir(), "ran")
	opts := Options{Command: sh("touch " + marker + " && mkdir -p dist && printf a > dist/a"), Dir: dir, OutDir: "dist"}
	var ss statementSigner

	_, err := Release(context.Background(), opts, SignOptions{Sign: ss.sign, OSVDB: filepath.Join(dir, "no-such-db")})
	var oe *OSVError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "is not a directory") {
		t.Fatalf("missing OSV database: err = %v, want *OSVError", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the build ran with a missing OSV database")
	}
	if _, err := Release(context.Background(), opts, SignOptions{}); err == nil {
		t.Error("Release without a signer succeeded")
	}

	// A signer's error comes back unchanged, and nothing is written.
	refused := errors.New("signing service refused")
	_, err = Release(context.Background(), opts, SignOptions{Sign: func(context.Context, []byte) ([]byte, error) { return nil, refused }})
	if !errors.Is(err, refused) {
		t.Fatalf("err = %v, want the signer's", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dist", "a"+BundleSuffix)); err == nil {
		t.Error("a bundle was written though signing failed")
	}
}
