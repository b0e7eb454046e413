package build

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/custody-dev/custody/attest"
)

func TestLockParsers(t *testing.T) {
	tests := []struct {
		file  string
		parse lockParser
		want  []attest.ResourceDescriptor // checked by URI; all must be present
		count int
	}{
		{"go.sum", parseGoSum, []attest.ResourceDescriptor{
			{URI: "pkg:golang/github.com/inconshreveable/mousetrap@v1.1.0", Digest: map[string]string{"dirHash": "c0dfb1e0d546a4cb0eec4ad49ff994237bc4a04e89b75dd7dacd1bab0a7db5cf"}},
			{URI: "pkg:golang/github.com/example/old@v2.0.0%2Bincompatible", Digest: map[string]string{"dirHash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}},
		}, 3},
		{"package-lock.json", parsePackageLock, []attest.ResourceDescriptor{
			{URI: "pkg:npm/%40types/node@20.11.0", DownloadLocation: "https://registry.npmjs.org/@types/node/-/node-20.11.0.tgz",
				Digest: map[string]string{"sha512": "a3d6e35e60cd705ec66cce02350a668be4eeb4281aa7f2b7c352722a0c408eac78d73a7daa52005458b422108db09717a2512a2d685b15b11e2f43ef626e2971"}},
			{URI: "pkg:npm/left-pad@1.3.0", DownloadLocation: "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
				Digest: map[string]string{
					"sha512": "09813a7230c60ea6206ce36923cf0b13517a8e1908f6eaa80b5e933741f1576cf1a64810a4ba3facf75f7281f5d5e56a82989617420eb2b77d98e96da8f76fae",
					"sha1":   "5b8a3a7765dfe001261dde915589e782f8c94d1e"}},
		}, 2}, // the nested duplicate left-pad, the link and the workspace member are not listed
		{"Cargo.lock", parseCargoLock, []attest.ResourceDescriptor{
			{URI: "pkg:cargo/itoa@1.0.10", Digest: map[string]string{"sha256": "b1a46d1a171d865aa5f83f92695765caa047a9b4cbae2cbf37dbd613a793fd4c"}},
			{URI: "pkg:cargo/mylib@0.2.0", DownloadLocation: "https://github.com/example/mylib?branch=main",
				Digest: map[string]string{"gitCommit": "0123456789abcdef0123456789abcdef01234567"}},
		}, 2},
		{"requirements.txt", parseRequirements, []attest.ResourceDescriptor{
			{URI: "pkg:pypi/certifi@2024.2.2", Digest: map[string]string{"sha256": "0569859f95fc761b18b45ef421b1290a0f65f147e92a1e5eb3e635f9a5e4e66f"}},
			{URI: "pkg:pypi/requests@2.31.0", Digest: map[string]string{"sha256": "58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f"}},
			{URI: "pkg:pypi/flask"},
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/lock/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.count {
				t.Errorf("got %d dependencies, want %d: %+v", len(got), tt.count, got)
			}
			byURI := make(map[string]attest.ResourceDescriptor)
			for _, d := range got {
				byURI[d.URI] = d
			}
			for _, w := range tt.want {
				g, ok := byURI[w.URI]
				if !ok {
					t.Errorf("missing %s in %+v", w.URI, got)
					continue
				}
				if g.DownloadLocation != w.DownloadLocation {
					t.Errorf("%s downloadLocation = %q, want %q", w.URI, g.DownloadLocation, w.DownloadLocation)
				}
				if len(g.Digest) != len(w.Digest) {
					t.Errorf("%s digest = %v, want %v", w.URI, g.Digest, w.Digest)
				}
				for k, v := range w.Digest {
					if g.Digest[k] != v {
						t.Errorf("%s digest[%s] = %s, want %s", w.URI, k, g.Digest[k], v)
					}
				}
			}
		})
	}
}

func TestRequirementsAlternativeHashes(t *testing.T) {
	b, err := os.ReadFile("testdata/lock/requirements.txt")
	if err != nil {
		t.Fatal(err)
	}
	deps, err := parseRequirements(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps {
		if d.URI == "pkg:pypi/certifi@2024.2.2" {
			alt, _ := d.Annotations["alternativeDigests"].([]string)
			if len(alt) != 1 || alt[0] != "sha256:dc383c07b76109f368f6106eee2b593b04a011ea4d55f652c6ca24a754d1cdd1" {
				t.Fatalf("alternativeDigests = %v", d.Annotations)
			}
			return
		}
	}
	t.Fatal("certifi not found")
}

func TestLockParsersReject(t *testing.T) {
	tests := []struct {
		name  string
		parse lockParser
		in    string
	}{
		{"go.sum two fields", parseGoSum, "example.com/m v1.0.0\n"},
		{"go.sum bad h1", parseGoSum, "example.com/m v1.0.0 h1:notbase64!\n"},
		{"go.sum short h1", parseGoSum, "example.com/m v1.0.0 h1:AAAA\n"},
		{"package-lock v1", parsePackageLock, `{"lockfileVersion":1,"dependencies":{}}`},
		{"package-lock not json", parsePackageLock, `{"lockfileVersion":3,`},
		{"package-lock bad integrity", parsePackageLock, `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1","integrity":"sha512-AAAA"}}}`},
		{"cargo bad checksum", parseCargoLock, "[[package]]\nname = \"a\"\nversion = \"1\"\nsource = \"registry+x\"\nchecksum = \"zz\"\n"},
		{"cargo not key value", parseCargoLock, "[[package]]\nname\n"},
		{"cargo unquoted", parseCargoLock, "[[package]]\nname = a\n"},
		{"cargo duplicate key", parseCargoLock, "[[package]]\nname = \"a\"\nname = \"b\"\nsource = \"registry+x\"\n"},
		{"cargo package not tables", parseCargoLock, "package = \"a\"\n"},
		{"cargo unterminated table", parseCargoLock, "[[package]\nname = \"a\"\n"},
		{"requirements bad hash", parseRequirements, "a==1 --hash=sha256:abc\n"},
		{"requirements bad alg", parseRequirements, "a==1 --hash=md5:d41d8cd98f00b204e9800998ecf8427e\n"},
		{"requirements no name", parseRequirements, "==1.0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.parse([]byte(tt.in)); err == nil {
				t.Fatalf("parsed %q as %+v, want error", tt.in, got)
			}
		})
	}
}

// TestCargoLockKeysExact checks that keys are matched as Cargo matches
// them: a "Checksum" Cargo ignores is not recorded as a digest, and valid
// TOML the old line-based subset refused (trailing comments) is read.
func TestCargoLockKeysExact(t *testing.T) {
	in := "[[package]]\nname = \"a\" # comment\nversion = \"1\"\nsource = \"registry+x\"\n" +
		"Checksum = \"" + strings.Repeat("ab", 32) + "\"\n"
	got, err := parseCargoLock([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].URI != "pkg:cargo/a@1" || len(got[0].Digest) != 0 {
		t.Fatalf("got %+v, want pkg:cargo/a@1 without a digest", got)
	}
}

// checkDeps is the invariant every lock parser keeps on any input.
func checkDeps(t *testing.T, deps []attest.ResourceDescriptor) {
	t.Helper()
	for _, d := range deps {
		if !strings.HasPrefix(d.URI, "pkg:") {
			t.Fatalf("dependency URI %q is not a purl", d.URI)
		}
		for k, v := range d.Digest {
			if _, err := hex.DecodeString(v); err != nil || v != strings.ToLower(v) || v == "" {
				t.Fatalf("digest %s=%q is not lowercase hex", k, v)
			}
		}
	}
}

func fuzzLock(f *testing.F, file string, parse lockParser) {
	if b, err := os.ReadFile("testdata/lock/" + file); err == nil {
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		deps, err := parse(b)
		if err != nil {
			return
		}
		checkDeps(t, deps)
	})
}

func FuzzParseGoSum(f *testing.F)        { fuzzLock(f, "go.sum", parseGoSum) }
func FuzzParsePackageLock(f *testing.F)  { fuzzLock(f, "package-lock.json", parsePackageLock) }
func FuzzParseCargoLock(f *testing.F)    { fuzzLock(f, "Cargo.lock", parseCargoLock) }
func FuzzParseRequirements(f *testing.F) { fuzzLock(f, "requirements.txt", parseRequirements) }
