package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/digest"
)

// BundleSuffix ends the name of the Sigstore bundle custody writes beside an
// artifact. Files under OutDir with this suffix are never outputs.
const BundleSuffix = ".sigstore.json"

// snapshotDir records the modification time of every regular file under
// dir, so files the build did not write can be reported.
func snapshotDir(dir string) map[string]time.Time {
	if dir == "" {
		return nil
	}
	snap := make(map[string]time.Time)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			snap[p] = fi.ModTime()
		}
		return nil
	})
	return snap
}

// collectOutputs lists and hashes the regular files under outDir and those
// matching patterns (relative to dir), sorted by name. With root set (a
// directory containing dir), every output is opened beneath it (os.Root):
// one that leads outside through a symlink is not read, and a finding
// says so.
func collectOutputs(ctx context.Context, dir, outDir, root string, patterns []string, before map[string]time.Time) ([]Output, []string, error) {
	var outs []Output
	seen := make(map[string]bool) // absolute paths
	var findings []string
	if outDir != "" {
		err := filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == outDir && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipAll
				}
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				findings = append(findings, fmt.Sprintf("output %s is a symlink and was not attested", p))
				return nil
			}
			if !d.Type().IsRegular() || strings.HasSuffix(p, BundleSuffix) {
				// Bundles from an earlier run sit beside their artifacts;
				// they are evidence about outputs, not outputs.
				return nil
			}
			rel, err := filepath.Rel(outDir, p)
			if err != nil {
				return err
			}
			outs = append(outs, Output{Name: filepath.ToSlash(rel), Path: p})
			seen[p] = true
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't list outputs in %s: %w", outDir, err)
		}
	}
	for _, pat := range patterns {
		matches, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, nil, fmt.Errorf("bad artifact pattern %q: %w", pat, err)
		}
		for _, p := range matches {
			if seen[p] {
				continue
			}
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return nil, nil, err
			}
			outs = append(outs, Output{Name: filepath.ToSlash(rel), Path: p})
			seen[p] = true
		}
	}
	slices.SortFunc(outs, func(a, b Output) int { return cmp.Compare(a.Name, b.Name) })
	for i := 1; i < len(outs); i++ {
		if outs[i].Name == outs[i-1].Name {
			return nil, nil, fmt.Errorf("two outputs are named %q (%s and %s)", outs[i].Name, outs[i-1].Path, outs[i].Path)
		}
	}
	for _, o := range outs {
		if t, ok := before[o.Path]; ok {
			if fi, err := os.Stat(o.Path); err == nil && fi.ModTime().Equal(t) {
				findings = append(findings, fmt.Sprintf("output %s existed before the build and was not rewritten by it", o.Name))
			}
		}
	}
	if root != "" {
		return hashBeneath(ctx, root, outs, findings)
	}
	paths := make([]string, len(outs))
	for i, o := range outs {
		paths[i] = o.Path
	}
	ds, err := digest.Files(ctx, paths, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't hash outputs: %w", err)
	}
	for i := range outs {
		outs[i].Digest = ds[i]
	}
	return outs, findings, nil
}

// mergeSubjects returns the subjects of files and explicit subjects, sorted
// by name. Two subjects with one name are an error unless identical.
func mergeSubjects(outs []Output, explicit []attest.Subject) ([]attest.Subject, error) {
	subs := make([]attest.Subject, 0, len(outs)+len(explicit))
	for _, o := range outs {
		subs = append(subs, attest.Subject{Name: o.Name, Digest: map[string]string{digest.SHA256: o.Digest.Hex}})
	}
	for _, s := range explicit {
		subs = append(subs, attest.Subject{Name: s.Name, Digest: map[string]string{digest.SHA256: s.Digest[digest.SHA256]}})
	}
	slices.SortStableFunc(subs, func(a, b attest.Subject) int { return cmp.Compare(a.Name, b.Name) })
	var out []attest.Subject
	for _, s := range subs {
		if n := len(out); n > 0 && s.Name == out[n-1].Name {
			if s.Digest[digest.SHA256] == out[n-1].Digest[digest.SHA256] {
				continue
			}
			return nil, fmt.Errorf("subject %q is given twice with different digests", s.Name)
		}
		out = append(out, s)
	}
	return out, nil
}

// hashBeneath hashes outs, each opened beneath root; those that are not
// regular files inside root are dropped with a finding.
func hashBeneath(ctx context.Context, root string, outs []Output, findings []string) ([]Output, []string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't open %s: %w", root, err)
	}
	defer r.Close()
	kept := outs[:0]
	for _, o := range outs {
		d, err := hashIn(ctx, r, root, o.Path)
		if errors.Is(err, errNotBeneath) {
			findings = append(findings, fmt.Sprintf("output %s is not a regular file inside %s and was not read", o.Name, root))
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't hash outputs: %w", err)
		}
		o.Digest = d
		kept = append(kept, o)
	}
	return kept, findings, nil
}

var errNotBeneath = errors.New("not a regular file beneath the root")

// hashIn hashes the file at path (absolute, below root's directory dir)
// through r, so no symlink can lead the read outside.
func hashIn(ctx context.Context, r *os.Root, dir, path string) (digest.Digest, error) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || !filepath.IsLocal(rel) {
		return digest.Digest{}, errNotBeneath
	}
	f, err := r.Open(rel)
	if err != nil {
		return digest.Digest{}, errNotBeneath
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return digest.Digest{}, errNotBeneath
	}
	return digest.Opened(ctx, f)
}
