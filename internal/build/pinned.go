package build

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/lazyre"
)

// Kinds of unpinned input, the "kind" of a Pinning finding.
const (
	PinGoSum      = "go-sum"      // go.mod requires modules but there is no go.sum
	PinNPMLock    = "npm-lock"    // package.json has dependencies but no lock file
	PinPipHash    = "pip-hash"    // a requirements file entry without --hash (or ==)
	PinDockerFrom = "docker-from" // a Dockerfile FROM without @sha256: digest
	PinActionRef  = "action-ref"  // a workflow uses an action by tag or branch, not commit
	PinUnreadable = "unreadable"  // an input file that could not be read or parsed
)

// Pinning is one unpinned input found in the source tree.
type Pinning = attest.Pinning

// InternalParameters is the internalParameters custody records.
type InternalParameters = attest.CustodyInternalParameters

// Limits of the pinning walk: a source tree is not expected to be larger,
// and a finding says when the walk stopped early.
const (
	maxPinFiles    = 20000
	maxPinFileSize = 1 << 20
)

// skipDirs are never walked: fetched dependencies and VCS metadata.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, ".hg": true, ".svn": true}

// findUnpinned walks dir (except outDir and skipDirs) for inputs that are
// not pinned: go.mod without go.sum, package.json without a lock file,
// requirements files without hashes, Dockerfile FROM without digest and
// GitHub workflow steps using an action by tag. Findings are sorted by
// file, then kind.
func findUnpinned(dir, outDir string) []Pinning {
	var out []Pinning
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		if d.IsDir() {
			if p != dir && (skipDirs[d.Name()] || p == outDir) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		seen++
		if seen > maxPinFiles {
			return errTooMany
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		name := d.Name()
		var check func(rel string, b []byte, dir string) []Pinning
		switch {
		case name == "go.mod":
			check = checkGoMod
		case name == "package.json":
			check = checkPackageJSON
		case isRequirementsFile(name):
			check = checkRequirements
		case isDockerfile(name):
			check = checkDockerfile
		case isWorkflow(rel):
			check = checkWorkflow
		default:
			return nil
		}
		b, err := readSmall(p)
		if err != nil {
			out = append(out, Pinning{Kind: PinUnreadable, File: rel, Detail: fmt.Sprintf("couldn't read: %v", err)})
			return nil
		}
		out = append(out, check(rel, b, filepath.Dir(p))...)
		return nil
	})
	if errors.Is(err, errTooMany) {
		out = append(out, Pinning{Kind: PinUnreadable, File: ".", Detail: fmt.Sprintf("stopped looking for unpinned inputs after %d files", maxPinFiles)})
	}
	slices.SortStableFunc(out, func(a, b Pinning) int {
		return strings.Compare(a.File+"\x00"+a.Kind, b.File+"\x00"+b.Kind)
	})
	return out
}

var errTooMany = errors.New("too many files")

func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPinFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPinFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxPinFileSize)
	}
	return b, nil
}

func exists(dir string, names ...string) bool {
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// checkGoMod: a go.mod that requires modules needs a go.sum beside it.
func checkGoMod(rel string, b []byte, dir string) []Pinning {
	if !goModRequires(b) || exists(dir, "go.sum") {
		return nil
	}
	return []Pinning{{Kind: PinGoSum, File: rel, Detail: "requires modules but there is no go.sum beside it"}}
}

// goModRequires reports whether a go.mod has a require directive with at
// least one module (single-line or block).
func goModRequires(b []byte) bool {
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxPinFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "":
			return true
		case line == "require (" || line == "require(":
			inBlock = true
		case strings.HasPrefix(line, "require ") && !strings.HasSuffix(line, "("):
			return true
		}
	}
	return false
}

// npmLockFiles pin an npm dependency tree.
var npmLockFiles = []string{"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "bun.lock"}

func checkPackageJSON(rel string, b []byte, dir string) []Pinning {
	var pj struct {
		Dependencies         map[string]any `json:"dependencies"`
		DevDependencies      map[string]any `json:"devDependencies"`
		OptionalDependencies map[string]any `json:"optionalDependencies"`
	}
	if err := json.Unmarshal(b, &pj); err != nil {
		return []Pinning{{Kind: PinUnreadable, File: rel, Detail: "not valid JSON"}}
	}
	n := len(pj.Dependencies) + len(pj.DevDependencies) + len(pj.OptionalDependencies)
	if n == 0 || exists(dir, npmLockFiles...) {
		return nil
	}
	// A workspace member is pinned by the lock file of its workspace root.
	for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		if exists(d, "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml") {
			return nil
		}
		if exists(d, "go.mod") || isDirExists(filepath.Join(d, ".git")) {
			break
		}
	}
	return []Pinning{{Kind: PinNPMLock, File: rel, Detail: fmt.Sprintf("%d dependencies but no lock file (package-lock.json, npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml)", n)}}
}

func isDirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isRequirementsFile(name string) bool {
	return strings.HasSuffix(name, ".txt") && strings.HasPrefix(name, "requirements")
}

// checkRequirements: every requirement needs an exact version (==) and a
// --hash; pip's --require-hashes mode needs both.
func checkRequirements(rel string, b []byte, _ string) []Pinning {
	deps, err := parseRequirements(b)
	if err != nil {
		return []Pinning{{Kind: PinUnreadable, File: rel, Detail: err.Error()}}
	}
	var unpinned []string
	for _, d := range deps {
		if len(d.Digest) == 0 || !strings.Contains(d.URI, "@") {
			name := strings.TrimPrefix(d.URI, "pkg:pypi/")
			unpinned = append(unpinned, name)
		}
	}
	if len(unpinned) == 0 {
		return nil
	}
	return []Pinning{{Kind: PinPipHash, File: rel, Detail: fmt.Sprintf("%d of %d requirements without an exact version and --hash: %s", len(unpinned), len(deps), listSome(unpinned))}}
}

func isDockerfile(name string) bool {
	l := strings.ToLower(name)
	return l == "dockerfile" || l == "containerfile" || strings.HasPrefix(l, "dockerfile.") || strings.HasSuffix(l, ".dockerfile") || strings.HasPrefix(l, "containerfile.")
}

// checkDockerfile: every FROM of an image (not scratch, not an earlier
// stage) needs an @sha256: digest.
func checkDockerfile(rel string, b []byte, _ string) []Pinning {
	var out []Pinning
	stages := map[string]bool{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		n := i + 1
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		args := f[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:] // --platform=…
		}
		if len(args) == 0 {
			continue
		}
		image := args[0]
		earlier := stages[strings.ToLower(image)]
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
		if earlier || strings.EqualFold(image, "scratch") || strings.Contains(image, "@sha256:") {
			continue
		}
		out = append(out, Pinning{Kind: PinDockerFrom, File: rel, Detail: fmt.Sprintf("line %d: FROM %s has no @sha256: digest", n, image)})
	}
	return out
}

func isWorkflow(rel string) bool {
	dir, file := path.Split(rel)
	return strings.HasSuffix(dir, ".github/workflows/") && (strings.HasSuffix(file, ".yml") || strings.HasSuffix(file, ".yaml"))
}

var (
	usesRE   = lazyre.New(`^\s*(?:-\s*)?["']?uses["']?\s*:\s*["']?([^"'\s#]+)`)
	commitRE = lazyre.New(`^[0-9a-f]{40}$`)
)

// checkWorkflow: every "uses: owner/repo[/path]@ref" of another repository
// needs a full 40-hex commit as ref; docker:// actions need a digest.
func checkWorkflow(rel string, b []byte, _ string) []Pinning {
	var out []Pinning
	for i, line := range strings.Split(string(b), "\n") {
		m := usesRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ref := m[1]
		detail := ""
		switch {
		case strings.HasPrefix(ref, "./"):
			continue // an action in the same repository: pinned by the commit
		case strings.HasPrefix(ref, "docker://"):
			if !strings.Contains(ref, "@sha256:") {
				detail = "has no @sha256: digest"
			}
		default:
			_, at, ok := strings.Cut(ref, "@")
			switch {
			case !ok:
				detail = "has no ref"
			case !commitRE.MatchString(at):
				detail = fmt.Sprintf("is pinned to %q, not a 40-hex commit", at)
			}
		}
		if detail != "" {
			out = append(out, Pinning{Kind: PinActionRef, File: rel, Detail: fmt.Sprintf("line %d: uses %s %s", i+1, ref, detail)})
		}
	}
	return out
}
