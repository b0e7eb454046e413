package build

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/sbom"
)

// maxLockFile bounds how much of a lock file is read.
const maxLockFile = 64 << 20

// Digest keys used in resolvedDependencies beyond the plain hash names.
const (
	// digestDirHash holds a go.sum "h1:" hash: the SHA-256 dirhash of the
	// module, as lowercase hex instead of base64 (in-toto DigestSet "dirHash").
	digestDirHash = "dirHash"
	// digestGitCommit holds a full git commit ID.
	digestGitCommit = "gitCommit"
)

// lockParser parses one lock file format into resolved dependencies.
type lockParser func([]byte) ([]attest.ResourceDescriptor, error)

// lockFiles are the lock files looked for in the build directory.
var lockFiles = []struct {
	name  string
	parse lockParser
}{
	{"go.sum", parseGoSum},
	{"package-lock.json", parsePackageLock},
	{"npm-shrinkwrap.json", parsePackageLock},
	{"Cargo.lock", parseCargoLock},
	{"requirements.txt", parseRequirements},
}

// lockFile is one lock file's content, read before or after the build.
type lockFile struct {
	name  string
	data  []byte
	sum   string // sha256 hex
	parse lockParser
	err   error // read error; data is nil
}

// readLockFiles reads the lock files present in dir.
func readLockFiles(dir string) map[string]lockFile {
	found := make(map[string]lockFile)
	for _, lf := range lockFiles {
		f, err := os.Open(filepath.Join(dir, lf.name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		l := lockFile{name: lf.name, parse: lf.parse}
		if err == nil {
			l.data, err = io.ReadAll(io.LimitReader(f, maxLockFile+1))
			f.Close()
			if err == nil && len(l.data) > maxLockFile {
				err = fmt.Errorf("larger than %d bytes", maxLockFile)
			}
		}
		if err != nil {
			l.data, l.err = nil, err
		} else {
			sum := sha256.Sum256(l.data)
			l.sum = hex.EncodeToString(sum[:])
		}
		found[lf.name] = l
	}
	return found
}

// resolvedDependencies lists the git source, then each lock file in dir
// with the dependencies it pins. Lock files are read after the build;
// before holds them as they were before it, to report changes.
func resolvedDependencies(src source, dir string, before map[string]lockFile) ([]attest.ResourceDescriptor, []string) {
	var deps []attest.ResourceDescriptor
	var findings []string
	if src.Commit != "" {
		deps = append(deps, attest.ResourceDescriptor{
			URI:    src.URI,
			Digest: map[string]string{digestGitCommit: src.Commit},
		})
	}
	after := readLockFiles(dir)
	for _, lf := range lockFiles {
		l, ok := after[lf.name]
		b, wasThere := before[lf.name]
		switch {
		case !ok && wasThere:
			findings = append(findings, fmt.Sprintf("%s was removed during the build", lf.name))
			continue
		case !ok:
			continue
		case l.err != nil:
			findings = append(findings, fmt.Sprintf("couldn't read %s: %v", lf.name, l.err))
			continue
		case !wasThere:
			findings = append(findings, fmt.Sprintf("%s was created during the build", lf.name))
		case b.sum != l.sum:
			findings = append(findings, fmt.Sprintf("%s changed during the build", lf.name))
		}
		deps = append(deps, attest.ResourceDescriptor{
			Name:   lf.name,
			Digest: map[string]string{"sha256": l.sum},
		})
		parsed, err := l.parse(l.data)
		if err != nil {
			findings = append(findings, fmt.Sprintf("couldn't parse %s: %v", lf.name, err))
			continue
		}
		unpinned := 0
		for _, d := range parsed {
			if len(d.Digest) == 0 {
				unpinned++
			}
		}
		if unpinned > 0 {
			findings = append(findings, fmt.Sprintf("%s: %d dependencies are not pinned by a hash", lf.name, unpinned))
		}
		deps = append(deps, parsed...)
	}
	return deps, findings
}

// purl returns a package URL pkg:TYPE/NAME@VERSION as sbom.PURL formats it,
// so build records and SBOM components spell a package the same way.
func purl(typ, name, version string) string {
	return sbom.PURL{Type: typ, Name: name, Version: version}.String()
}

// sortDeps sorts by URI then digest and drops exact duplicates.
func sortDeps(deps []attest.ResourceDescriptor) []attest.ResourceDescriptor {
	key := func(d attest.ResourceDescriptor) string {
		ks := make([]string, 0, len(d.Digest))
		for k, v := range d.Digest {
			ks = append(ks, k+"="+v)
		}
		slices.Sort(ks)
		return d.URI + " " + d.DownloadLocation + " " + strings.Join(ks, ",")
	}
	slices.SortStableFunc(deps, func(a, b attest.ResourceDescriptor) int { return cmp.Compare(key(a), key(b)) })
	return slices.CompactFunc(deps, func(a, b attest.ResourceDescriptor) bool { return key(a) == key(b) })
}

// parseGoSum parses go.sum: "MODULE VERSION h1:BASE64" lines. Lines for a
// module's go.mod only ("VERSION/go.mod") are skipped: only the module's
// content is a build input. The h1 hash is recorded under "dirHash".
func parseGoSum(b []byte) ([]attest.ResourceDescriptor, error) {
	var deps []attest.ResourceDescriptor
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want MODULE VERSION HASH", i+1)
		}
		mod, ver, h := f[0], f[1], f[2]
		if strings.HasSuffix(ver, "/go.mod") {
			continue
		}
		d := attest.ResourceDescriptor{URI: purl("golang", mod, ver)}
		if b64, ok := strings.CutPrefix(h, "h1:"); ok {
			raw, err := base64.StdEncoding.Strict().DecodeString(b64)
			if err != nil || len(raw) != sha256.Size {
				return nil, fmt.Errorf("line %d: malformed h1 hash for %s", i+1, short(mod))
			}
			d.Digest = map[string]string{digestDirHash: hex.EncodeToString(raw)}
		} else if !strings.Contains(h, ":") {
			return nil, fmt.Errorf("line %d: malformed hash for %s", i+1, short(mod))
		}
		deps = append(deps, d)
	}
	return sortDeps(deps), nil
}

// parsePackageLock parses the "packages" map of an npm package-lock.json
// (lockfileVersion 2 or 3). The "integrity" SRI hashes become sha512,
// sha384, sha256 or sha1 digests.
func parsePackageLock(b []byte) ([]attest.ResourceDescriptor, error) {
	var lock struct {
		LockfileVersion int `json:"lockfileVersion"`
		Packages        map[string]struct {
			Name      string `json:"name"`
			Version   string `json:"version"`
			Resolved  string `json:"resolved"`
			Integrity string `json:"integrity"`
			Link      bool   `json:"link"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if lock.LockfileVersion != 2 && lock.LockfileVersion != 3 {
		return nil, fmt.Errorf("unsupported lockfileVersion %d (want 2 or 3)", lock.LockfileVersion)
	}
	var deps []attest.ResourceDescriptor
	for key, p := range lock.Packages {
		i := strings.LastIndex(key, "node_modules/")
		if i < 0 || p.Link || p.Version == "" {
			continue // the root package, workspace members and links are not fetched
		}
		name := p.Name
		if name == "" {
			name = key[i+len("node_modules/"):]
		}
		if name == "" {
			continue
		}
		d := attest.ResourceDescriptor{URI: purl("npm", name, p.Version)}
		if u, err := url.Parse(p.Resolved); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
			d.DownloadLocation = p.Resolved
		}
		if p.Integrity != "" {
			dg, err := parseSRI(p.Integrity)
			if err != nil {
				return nil, fmt.Errorf("package %q: %w", short(key), err)
			}
			d.Digest = dg
		}
		deps = append(deps, d)
	}
	return sortDeps(deps), nil
}

// parseSRI parses a Subresource Integrity string ("sha512-BASE64 sha1-…")
// into a digest set of lowercase hex. Unknown algorithms are ignored.
func parseSRI(s string) (map[string]string, error) {
	sizes := map[string]int{"sha512": 64, "sha384": 48, "sha256": 32, "sha1": 20}
	var dg map[string]string
	for _, tok := range strings.Fields(s) {
		alg, b64, ok := strings.Cut(tok, "-")
		if !ok {
			return nil, fmt.Errorf("malformed integrity %q", short(tok))
		}
		size, known := sizes[alg]
		if !known {
			continue
		}
		if i := strings.IndexByte(b64, '?'); i >= 0 {
			b64 = b64[:i] // SRI options
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != size {
			return nil, fmt.Errorf("malformed %s integrity", alg)
		}
		if dg == nil {
			dg = make(map[string]string)
		}
		dg[alg] = hex.EncodeToString(raw)
	}
	return dg, nil
}

// cargoPackage is the part of a Cargo.lock [[package]] table that pins it.
type cargoPackage struct{ Name, Version, Source, Checksum string }

// cargoPackages decodes the [[package]] tables of a Cargo.lock. Keys are
// matched exactly, as Cargo does (go-toml's struct decoding would also take
// "Checksum" for "checksum"), and must hold strings.
func cargoPackages(b []byte) ([]cargoPackage, error) {
	var doc map[string]any
	if err := toml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("invalid TOML: %s", short(err.Error()))
	}
	raw, ok := doc["package"]
	if !ok {
		return nil, nil
	}
	tables, ok := raw.([]any)
	if !ok {
		return nil, errors.New("package is not an array of tables")
	}
	pkgs := make([]cargoPackage, len(tables))
	for i, t := range tables {
		m, ok := t.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("package %d is not a table", i+1)
		}
		p := &pkgs[i]
		for key, dst := range map[string]*string{"name": &p.Name, "version": &p.Version, "source": &p.Source, "checksum": &p.Checksum} {
			v, present := m[key]
			if !present {
				continue
			}
			if *dst, ok = v.(string); !ok {
				return nil, fmt.Errorf("package %d: %s: want a string", i+1, key)
			}
		}
	}
	return pkgs, nil
}

// parseCargoLock parses the [[package]] tables of a Cargo.lock. Packages
// without a source (workspace members) are skipped; "checksum" becomes a
// sha256 digest and a git source's "#COMMIT" a gitCommit digest.
func parseCargoLock(b []byte) ([]attest.ResourceDescriptor, error) {
	pkgs, err := cargoPackages(b)
	if err != nil {
		return nil, err
	}
	var deps []attest.ResourceDescriptor
	for _, p := range pkgs {
		if p.Source == "" {
			continue
		}
		if p.Name == "" {
			return nil, errors.New("package without a name")
		}
		d := attest.ResourceDescriptor{URI: purl("cargo", p.Name, p.Version)}
		if p.Checksum != "" {
			if len(p.Checksum) != 64 || !isHex(p.Checksum) {
				return nil, fmt.Errorf("package %q: malformed checksum", short(p.Name))
			}
			d.Digest = map[string]string{"sha256": strings.ToLower(p.Checksum)}
		}
		if rest, ok := strings.CutPrefix(p.Source, "git+"); ok {
			loc, commit, _ := strings.Cut(rest, "#")
			d.DownloadLocation = loc
			if len(commit) == 40 && isHex(commit) {
				if d.Digest == nil {
					d.Digest = make(map[string]string)
				}
				d.Digest[digestGitCommit] = strings.ToLower(commit)
			}
		}
		deps = append(deps, d)
	}
	return sortDeps(deps), nil
}

// parseRequirements parses a pip requirements file. A requirement
// "name==version" becomes pkg:pypi/name@version; its "--hash=sha256:HEX"
// options the digest (the first one per algorithm, the others in the
// "alternativeDigests" annotation, since pip accepts any of them).
// Requirements without == or without hashes are listed without a version or
// digest. Option lines (-r, -c, --index-url, …) are ignored.
func parseRequirements(b []byte) ([]attest.ResourceDescriptor, error) {
	var deps []attest.ResourceDescriptor
	var logical []string
	var cont bytes.Buffer
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`))
			cont.WriteByte(' ')
			continue
		}
		cont.WriteString(line)
		logical = append(logical, cont.String())
		cont.Reset()
	}
	if cont.Len() > 0 {
		logical = append(logical, cont.String())
	}
	for _, line := range logical {
		line = stripComment(line)
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "-") {
			continue
		}
		var hashes []string
		var spec []string
		for i := 0; i < len(fields); i++ {
			f := fields[i]
			switch {
			case strings.HasPrefix(f, "--hash="):
				hashes = append(hashes, strings.TrimPrefix(f, "--hash="))
			case f == "--hash" && i+1 < len(fields):
				i++
				hashes = append(hashes, fields[i])
			case strings.HasPrefix(f, "-"):
				// per-requirement options such as --global-option
			default:
				spec = append(spec, f)
			}
		}
		d, err := parseRequirementSpec(strings.Join(spec, " "))
		if err != nil {
			return nil, err
		}
		for _, h := range hashes {
			alg, hx, ok := strings.Cut(h, ":")
			size := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
			if !ok || size == 0 || len(hx) != size || !isHex(hx) {
				return nil, fmt.Errorf("requirement %q: malformed hash %q", short(d.URI), short(h))
			}
			hx = strings.ToLower(hx)
			if d.Digest == nil {
				d.Digest = make(map[string]string)
			}
			if _, dup := d.Digest[alg]; !dup {
				d.Digest[alg] = hx
				continue
			}
			if d.Annotations == nil {
				d.Annotations = map[string]any{"alternativeDigests": []string{}}
			}
			d.Annotations["alternativeDigests"] = append(d.Annotations["alternativeDigests"].([]string), alg+":"+hx)
		}
		deps = append(deps, d)
	}
	return sortDeps(deps), nil
}

// stripComment removes a pip comment: '#' at the start or after whitespace.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// parseRequirementSpec parses "name[extras]==version ; marker" or
// "name @ URL".
func parseRequirementSpec(spec string) (attest.ResourceDescriptor, error) {
	spec, _, _ = strings.Cut(spec, ";")
	spec = strings.TrimSpace(spec)
	end := 0
	for end < len(spec) {
		c := spec[end]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' {
			end++
			continue
		}
		break
	}
	if end == 0 {
		return attest.ResourceDescriptor{}, fmt.Errorf("malformed requirement %q", short(spec))
	}
	name := normalizePyPIName(spec[:end])
	rest := strings.TrimSpace(spec[end:])
	if strings.HasPrefix(rest, "[") {
		if i := strings.IndexByte(rest, ']'); i >= 0 {
			rest = strings.TrimSpace(rest[i+1:])
		}
	}
	var d attest.ResourceDescriptor
	switch {
	case strings.HasPrefix(rest, "==="):
		d.URI = purl("pypi", name, strings.TrimSpace(rest[3:]))
	case strings.HasPrefix(rest, "=="):
		v := strings.TrimSpace(rest[2:])
		if strings.ContainsAny(v, "*,<>!=~ ") {
			d.URI = purl("pypi", name, "") // a range, not a pin
		} else {
			d.URI = purl("pypi", name, v)
		}
	case strings.HasPrefix(rest, "@"):
		d.URI = purl("pypi", name, "")
		d.DownloadLocation = strings.TrimSpace(rest[1:])
	default:
		d.URI = purl("pypi", name, "")
	}
	return d, nil
}

// normalizePyPIName applies PEP 503 normalisation.
func normalizePyPIName(n string) string {
	n = strings.ToLower(n)
	var b strings.Builder
	sep := false
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteByte(c)
	}
	return b.String()
}
