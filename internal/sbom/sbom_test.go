package sbom

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

func TestParsePURL(t *testing.T) {
	tests := []struct {
		in   string
		want PURL
	}{
		{"pkg:golang/golang.org/x/text@v0.3.6", PURL{"golang", "golang.org/x/text", "v0.3.6"}},
		{"pkg:golang/github.com/dgrijalva/jwt-go@v3.2.0%2Bincompatible", PURL{"golang", "github.com/dgrijalva/jwt-go", "v3.2.0+incompatible"}},
		{"pkg:npm/%40scope/name@1.0.0?arch=x#sub", PURL{"npm", "@scope/name", "1.0.0"}},
		{"pkg:npm/left-pad", PURL{"npm", "left-pad", ""}},
	}
	for _, tt := range tests {
		got, err := ParsePURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if tt.want.Version != "" && got.String() != strings.Split(strings.Split(tt.in, "?")[0], "#")[0] {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	for _, bad := range []string{"", "npm/x", "pkg:", "pkg:npm", "pkg:npm/%zz", "pkg:npm/a//b"} {
		if _, err := ParsePURL(bad); err == nil {
			t.Errorf("ParsePURL(%q): no error", bad)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	deps := []attest.ResourceDescriptor{
		{URI: "git+https://github.com/org/repo", Digest: map[string]string{"gitCommit": "abc"}},
		{Name: "go.sum", Digest: map[string]string{"sha256": "00"}},
		{URI: "pkg:golang/golang.org/x/text@v0.3.6", Digest: map[string]string{"dirHash": "68a6"}},
		{URI: "pkg:npm/%40example/parser@1.0.0", Digest: map[string]string{"sha512": "ff"}},
		{URI: "pkg:pypi/requests@2.31.0"},
	}
	comps := FromDependencies(deps)
	bin := []Component{{Ecosystem: EcosystemGo, Name: "golang.org/x/text", Version: "v0.3.6", PURL: "pkg:golang/golang.org/x/text@v0.3.6", Sources: []string{"buildinfo:app"}, Replace: "golang.org/x/text v0.3.6 => ./third_party/text"}}
	merged := Merge(comps, bin)
	if len(merged) != 3 {
		t.Fatalf("merged %+v", merged)
	}
	bom := New([]Subject{{Name: "app", SHA256: strings.Repeat("a", 64)}}, merged, Options{Time: time.Unix(0, 0)})
	b, err := Encode(bom)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"specVersion":"1.5"`) {
		t.Fatalf("not CycloneDX 1.5: %s", b)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got, skipped := Components(back)
	if skipped != 1 { // the pypi package
		t.Errorf("skipped %d, want 1", skipped)
	}
	if len(got) != 2 {
		t.Fatalf("components %+v", got)
	}
	text := got[0]
	if text.Name != "golang.org/x/text" || text.Ecosystem != EcosystemGo || text.DirHash != "68a6" || text.Replace == "" || !slices.Equal(text.Sources, []string{"go.sum", "buildinfo:app"}) {
		t.Errorf("x/text = %+v", text)
	}
	if got[1].Name != "@example/parser" || got[1].Ecosystem != EcosystemNPM || got[1].Hashes["SHA-512"] != "ff" {
		t.Errorf("npm = %+v", got[1])
	}
}

func TestParseRejects(t *testing.T) {
	for _, b := range []string{``, `[]`, `{"bomFormat":"SPDX"}`, `{"bomFormat":"CycloneDX","components":"x"}`} {
		if _, err := Parse([]byte(b)); err == nil {
			t.Errorf("Parse(%q): no error", b)
		}
	}
}

func TestFromBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain")
	}
	exe := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command(goBin, "build", "-o", exe, ".")
	cmd.Dir = "../../testdata/projects/vulnerable-go"
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	comps, err := FromBuildInfo(f, "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []Component{
		{Ecosystem: EcosystemGo, Name: "golang.org/x/text", Version: "v0.3.6", PURL: "pkg:golang/golang.org/x/text@v0.3.6",
			Sources: []string{"buildinfo:app"}, Replace: "golang.org/x/text v0.3.6 => ./third_party/text"},
		{Ecosystem: EcosystemGo, Name: "stdlib", Version: "v" + strings.TrimPrefix(runtime.Version(), "go"),
			PURL: "pkg:golang/stdlib@v" + strings.TrimPrefix(runtime.Version(), "go"), Sources: []string{"buildinfo:app"}},
	}
	if len(comps) != len(want) {
		t.Fatalf("got %+v", comps)
	}
	for i := range want {
		c := comps[i]
		if c.Name != want[i].Name || c.Version != want[i].Version || c.PURL != want[i].PURL || c.Replace != want[i].Replace || !slices.Equal(c.Sources, want[i].Sources) {
			t.Errorf("component %d = %+v, want %+v", i, c, want[i])
		}
	}
	notGo := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notGo, []byte("#!/bin/sh\n"), 0o755)
	g, _ := os.Open(notGo)
	defer g.Close()
	if _, err := FromBuildInfo(g, "x"); !errors.Is(err, ErrNotGoBinary) {
		t.Errorf("shell script: %v", err)
	}
}

// FuzzParse: untrusted SBOMs never panic the parser or the component walk.
func FuzzParse(f *testing.F) {
	bom := New([]Subject{{Name: "a", SHA256: "00"}}, []Component{{Ecosystem: EcosystemGo, Name: "m", Version: "v1.0.0", PURL: "pkg:golang/m@v1.0.0", Sources: []string{"go.sum"}}}, Options{Time: time.Unix(0, 0)})
	b, _ := Encode(bom)
	f.Add(b)
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x","purl":"pkg:npm/%40a/b@1","components":[{"type":"library","name":"y"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bom, err := Parse(b)
		if err != nil {
			return
		}
		Components(bom)
	})
}

func FuzzParsePURL(f *testing.F) {
	f.Add("pkg:npm/%40scope/name@1.0.0?q=1#s")
	f.Add("pkg:golang/golang.org/x/text@v0.3.6")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePURL(s)
		if err != nil {
			return
		}
		if q, err := ParsePURL(p.String()); err != nil || q != p {
			t.Fatalf("%q: round trip %+v -> %q -> %+v, %v", s, p, p.String(), q, err)
		}
	})
}
