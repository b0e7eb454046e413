// Package sbom builds and reads CycloneDX software bills of materials
// (https://cyclonedx.org/specification/overview/, JSON, spec 1.5) of the
// dependencies custody resolves in a build: Go modules from go.sum and
// from a Go binary's embedded build information (debug/buildinfo), and npm
// packages from package-lock.json. Components are named by package URLs
// (https://github.com/package-url/purl-spec), which is also how a scan
// finds them again.
package sbom

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/custody-dev/custody/attest"
)

// MaxBytes bounds an SBOM read by Parse.
const MaxBytes = attest.MaxStatementBytes

// Ecosystems of components, as OSV names them.
const (
	EcosystemGo  = "Go"
	EcosystemNPM = "npm"
)

// Component is one dependency.
type Component struct {
	// Ecosystem is "Go" or "npm" (OSV's names); "" for other package types.
	Ecosystem string
	Name      string // module path or npm package name ("@scope/name")
	Version   string // as the ecosystem writes it ("v1.2.3", "1.2.3")
	PURL      string
	// Hashes are CycloneDX hashes by algorithm ("SHA-512": hex).
	Hashes map[string]string
	// DirHash is a Go module's go.sum "h1:" hash as hex, when known.
	DirHash string
	// Sources say where the component was found: "go.sum",
	// "package-lock.json", "buildinfo:NAME".
	Sources []string
	// Replace is a Go module's replacement ("./local" or "path vX"), when
	// the binary's build info records one.
	Replace string
}

// FromDependencies returns the package components among resolved
// dependencies (in-toto ResourceDescriptors named by pkg: URIs, as custody
// records them), tagged with source. Other descriptors are skipped.
func FromDependencies(deps []attest.ResourceDescriptor) []Component {
	var out []Component
	for _, d := range deps {
		if !strings.HasPrefix(d.URI, "pkg:") {
			continue
		}
		p, err := ParsePURL(d.URI)
		if err != nil || p.Version == "" {
			continue
		}
		c := Component{Ecosystem: ecosystemOf(p.Type), Name: p.Name, Version: p.Version, PURL: d.URI}
		for alg, hx := range d.Digest {
			switch alg {
			case "dirHash":
				c.DirHash = hx
			case "sha1", "sha256", "sha384", "sha512":
				if c.Hashes == nil {
					c.Hashes = make(map[string]string)
				}
				c.Hashes[cdxAlg(alg)] = hx
			}
		}
		switch p.Type {
		case "golang":
			c.Sources = []string{"go.sum"}
		case "npm":
			c.Sources = []string{"package-lock.json"}
		default:
			c.Sources = []string{"lock file"}
		}
		out = append(out, c)
	}
	return out
}

func ecosystemOf(purlType string) string {
	switch purlType {
	case "golang":
		return EcosystemGo
	case "npm":
		return EcosystemNPM
	}
	return ""
}

func cdxAlg(alg string) string {
	switch alg {
	case "sha1":
		return string(cdx.HashAlgoSHA1)
	case "sha256":
		return string(cdx.HashAlgoSHA256)
	case "sha384":
		return string(cdx.HashAlgoSHA384)
	}
	return string(cdx.HashAlgoSHA512)
}

// Merge combines component lists: components with the same purl become one,
// with the union of their sources and hashes. The result is sorted by purl.
func Merge(lists ...[]Component) []Component {
	byPURL := make(map[string]int)
	var out []Component
	for _, l := range lists {
		for _, c := range l {
			i, ok := byPURL[c.PURL]
			if !ok {
				c.Sources = slices.Clone(c.Sources)
				byPURL[c.PURL] = len(out)
				out = append(out, c)
				continue
			}
			o := &out[i]
			for _, s := range c.Sources {
				if !slices.Contains(o.Sources, s) {
					o.Sources = append(o.Sources, s)
				}
			}
			for k, v := range c.Hashes {
				if o.Hashes == nil {
					o.Hashes = make(map[string]string)
				}
				if _, has := o.Hashes[k]; !has {
					o.Hashes[k] = v
				}
			}
			o.DirHash = cmp.Or(o.DirHash, c.DirHash)
			o.Replace = cmp.Or(o.Replace, c.Replace)
		}
	}
	slices.SortFunc(out, func(a, b Component) int { return strings.Compare(a.PURL, b.PURL) })
	return out
}

// Subject is what the SBOM describes.
type Subject struct {
	Name   string
	SHA256 string // hex
}

// Options say who made the SBOM and when.
type Options struct {
	// Tool names the generator; default "custody".
	Tool string
	// Time is the metadata timestamp; zero means now.
	Time time.Time
}

// Properties custody sets on components.
const (
	PropSource  = "custody:source"
	PropDirHash = "custody:go.sum.h1.hex"
	PropReplace = "custody:go.replace"
)

// New builds a CycloneDX BOM (spec 1.5) of components describing subjects:
// one subject becomes metadata.component; several become an application
// component with each subject as a file component inside.
func New(subjects []Subject, components []Component, opts Options) *cdx.BOM {
	bom := cdx.NewBOM()
	t := opts.Time
	if t.IsZero() {
		t = time.Now()
	}
	tool := cmp.Or(opts.Tool, "custody")
	bom.Metadata = &cdx.Metadata{
		Timestamp: t.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: tool,
		}}},
	}
	subjComp := func(s Subject) cdx.Component {
		c := cdx.Component{Type: cdx.ComponentTypeFile, Name: s.Name, BOMRef: "subject:" + s.Name}
		if s.SHA256 != "" {
			c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: s.SHA256}}
		}
		return c
	}
	switch len(subjects) {
	case 0:
	case 1:
		c := subjComp(subjects[0])
		bom.Metadata.Component = &c
	default:
		inner := make([]cdx.Component, 0, len(subjects))
		for _, s := range subjects {
			inner = append(inner, subjComp(s))
		}
		bom.Metadata.Component = &cdx.Component{Type: cdx.ComponentTypeApplication, Name: "build outputs", BOMRef: "subjects", Components: &inner}
	}
	comps := make([]cdx.Component, 0, len(components))
	for _, c := range components {
		cc := cdx.Component{
			Type:       cdx.ComponentTypeLibrary,
			BOMRef:     c.PURL,
			Name:       c.Name,
			Version:    c.Version,
			PackageURL: c.PURL,
		}
		if len(c.Hashes) > 0 {
			var hs []cdx.Hash
			for _, alg := range slices.Sorted(mapKeys(c.Hashes)) {
				hs = append(hs, cdx.Hash{Algorithm: cdx.HashAlgorithm(alg), Value: c.Hashes[alg]})
			}
			cc.Hashes = &hs
		}
		var props []cdx.Property
		for _, s := range c.Sources {
			props = append(props, cdx.Property{Name: PropSource, Value: s})
		}
		if c.DirHash != "" {
			props = append(props, cdx.Property{Name: PropDirHash, Value: c.DirHash})
		}
		if c.Replace != "" {
			props = append(props, cdx.Property{Name: PropReplace, Value: c.Replace})
		}
		if len(props) > 0 {
			cc.Properties = &props
		}
		comps = append(comps, cc)
	}
	bom.Components = &comps
	return bom
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Encode writes bom as CycloneDX 1.5 JSON.
func Encode(bom *cdx.BOM) ([]byte, error) {
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_5); err != nil {
		return nil, fmt.Errorf("couldn't encode SBOM: %w", err)
	}
	return buf.Bytes(), nil
}

// Parse reads a CycloneDX JSON SBOM (any spec version the library knows).
func Parse(b []byte) (*cdx.BOM, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("SBOM is %d bytes, more than the limit of %d", len(b), MaxBytes)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("couldn't parse CycloneDX SBOM: %w", err)
	}
	if bom.BOMFormat != cdx.BOMFormat {
		return nil, errors.New("not a CycloneDX SBOM: bomFormat is not \"CycloneDX\"")
	}
	return &bom, nil
}

// Components returns the package components of bom (nested ones
// included) that have a pkg:golang or pkg:npm purl with a version, sorted
// by purl. Others are counted in skipped.
func Components(bom *cdx.BOM) (comps []Component, skipped int) {
	var walk func(cs *[]cdx.Component, depth int)
	walk = func(cs *[]cdx.Component, depth int) {
		if cs == nil || depth > 32 {
			return
		}
		for _, c := range *cs {
			walk(c.Components, depth+1)
			if c.PackageURL == "" {
				if c.Type == cdx.ComponentTypeLibrary {
					skipped++
				}
				continue
			}
			p, err := ParsePURL(c.PackageURL)
			eco := ""
			if err == nil {
				eco = ecosystemOf(p.Type)
			}
			if eco == "" || p.Version == "" {
				skipped++
				continue
			}
			comp := Component{Ecosystem: eco, Name: p.Name, Version: p.Version, PURL: c.PackageURL}
			if c.Hashes != nil {
				for _, h := range *c.Hashes {
					if comp.Hashes == nil {
						comp.Hashes = make(map[string]string)
					}
					comp.Hashes[string(h.Algorithm)] = h.Value
				}
			}
			if c.Properties != nil {
				for _, pr := range *c.Properties {
					switch pr.Name {
					case PropSource:
						comp.Sources = append(comp.Sources, pr.Value)
					case PropReplace:
						comp.Replace = pr.Value
					case PropDirHash:
						comp.DirHash = pr.Value
					}
				}
			}
			comps = append(comps, comp)
		}
	}
	walk(bom.Components, 0)
	return Merge(comps), skipped
}
