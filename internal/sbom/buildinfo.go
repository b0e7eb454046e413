package sbom

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotGoBinary is returned by FromBuildInfo for a file that is not a Go
// executable with build information.
var ErrNotGoBinary = errors.New("not a Go binary with build information")

// FromBuildInfo reads the module build information embedded in a Go
// binary (debug/buildinfo): each dependency module (at its replacement
// when that is another module version) and the standard library
// ("stdlib" at the Go version, as OSV's Go database names it). name tags
// the components' source ("buildinfo:NAME"). A file that is not a Go
// binary gives ErrNotGoBinary (wrapped).
func FromBuildInfo(r io.ReaderAt, name string) ([]Component, error) {
	bi, err := buildinfo.Read(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotGoBinary, err)
	}
	src := "buildinfo:" + name
	var out []Component
	if v, ok := strings.CutPrefix(bi.GoVersion, "go"); ok && v != "" {
		v, _, _ = strings.Cut(v, " ") // "go1.22.1 X:boringcrypto"
		out = append(out, goComponent("stdlib", "v"+v, src))
	}
	for _, d := range bi.Deps {
		if d == nil || d.Path == "" {
			continue
		}
		c := goComponent(d.Path, d.Version, src)
		if r := d.Replace; r != nil {
			if r.Version != "" && r.Version != "(devel)" {
				// replaced by another module version: that is what was built
				c = goComponent(r.Path, r.Version, src)
				c.Replace = d.Path + " " + d.Version + " => " + r.Path + " " + r.Version
			} else {
				// replaced by a directory: the module keeps the version it
				// claims, and the SBOM says it was replaced
				c.Replace = d.Path + " " + d.Version + " => " + r.Path
			}
		}
		if c.Version == "" || c.Version == "(devel)" {
			continue
		}
		out = append(out, c)
	}
	return Merge(out), nil
}

func goComponent(path, version, src string) Component {
	return Component{
		Ecosystem: EcosystemGo,
		Name:      path,
		Version:   version,
		PURL:      PURL{Type: "golang", Name: path, Version: version}.String(),
		Sources:   []string{src},
	}
}
