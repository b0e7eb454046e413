package oci

import (
	"errors"
	"strings"
	"testing"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
	}{
		{"oci://127.0.0.1:5000/app", Ref{Registry: "127.0.0.1:5000", Repository: "app"}},
		{"oci://registry.example.com/team/app:v1.2", Ref{Registry: "registry.example.com", Repository: "team/app", Tag: "v1.2"}},
		{"oci://localhost:5000/a/b/c@sha256:" + hex64, Ref{Registry: "localhost:5000", Repository: "a/b/c", Digest: "sha256:" + hex64}},
		{"oci://r.io/app:v1@sha256:" + hex64, Ref{Registry: "r.io", Repository: "app", Tag: "v1", Digest: "sha256:" + hex64}},
		{"oci://[::1]:5000/my_app__x-y.z", Ref{Registry: "[::1]:5000", Repository: "my_app__x-y.z"}},
		{"oci://Registry.Example.com/app", Ref{Registry: "Registry.Example.com", Repository: "app"}},
	} {
		got, err := ParseRef(tc.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseRef(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestParseRefRefuses(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"127.0.0.1:5000/app", "must start with oci://"},
		{"./dist/app", "must start with oci://"},
		{"oci:/127.0.0.1/app", "must start with oci://"},
		{"docker://r.io/app", "must start with oci://"},
		{"oci://", "want oci://HOST/REPO"},
		{"oci://r.io", "want oci://HOST/REPO"},
		{"oci://r.io/", "want oci://HOST/REPO"},
		{"oci:///app", "registry"},
		{"oci://r.io:0/app", "port must be 1-65535"},
		{"oci://r.io:99999/app", "port must be 1-65535"},
		{"oci://r.io:05000/app", "port must be 1-65535"},
		{"oci://r_x.io/app", "not a host name"},
		{"oci://user:pw@r.io/app", "credentials do not belong"},
		{"oci://[fe80::1%eth0]/app", "not a bracketed IPv6"},
		{"oci://r.io/App", "repository"},
		{"oci://r.io/app/", "repository"},
		{"oci://r.io/a//b", "repository"},
		{"oci://r.io/../etc", "repository"},
		{"oci://r.io/app:", "tag"},
		{"oci://r.io/app:-x", "tag"},
		{"oci://r.io/app:" + strings.Repeat("a", 129), "tag"},
		{"oci://r.io/app@sha256:" + strings.ToUpper(hex64), "digest must be sha256"},
		{"oci://r.io/app@sha512:" + hex64, "digest must be sha256"},
		{"oci://r.io/app@sha256:abc", "digest must be sha256"},
		{"oci://r.io/app?x=1", "repository"},
		{"oci://r.io/app app", "repository"},
		{"oci://r.io/" + strings.Repeat("a", 256), "repository"},
	} {
		_, err := ParseRef(tc.in)
		if err == nil {
			t.Errorf("ParseRef(%q) succeeded", tc.in)
			continue
		}
		if !errors.Is(err, ErrRef) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseRef(%q) = %v, want ErrRef saying %q", tc.in, err, tc.says)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRef(%q): error is not one line: %q", tc.in, err)
		}
	}
}

// A path, however mistyped, is never taken for an image reference.
func TestIsRefNeedsPrefix(t *testing.T) {
	for _, s := range []string{"app.tar", "r.io/app:v1", "oci:r.io/app", "OCI://r.io/app", " oci://r.io/app", ""} {
		if IsRef(s) {
			t.Errorf("IsRef(%q) = true", s)
		}
	}
	if !IsRef("oci://r.io/app") {
		t.Error("IsRef(oci://r.io/app) = false")
	}
}

// FuzzParseRef: ParseRef never panics, and whatever it accepts prints back
// to itself, names a host and a repository, and has a valid digest if any.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"oci://127.0.0.1:5000/app:v1", "oci://r.io/a/b@sha256:" + hex64, "oci://[::1]:1/x:y@sha256:" + hex64,
		"oci://r.io/app:", "oci://r.io", "oci://a:b:c/d", "oci://[::1/x", "oci://r.io/a__b--c.d_e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrRef) {
				t.Fatalf("error does not wrap ErrRef: %v", err)
			}
			return
		}
		if r.String() != s {
			t.Fatalf("ParseRef(%q).String() = %q", s, r.String())
		}
		if r.Registry == "" || r.Repository == "" || r.Digest != "" && !validDigest(r.Digest) {
			t.Fatalf("ParseRef(%q) = %+v", s, r)
		}
		if strings.ContainsAny(s, " \t\r\n?#\\") {
			t.Fatalf("ParseRef accepted %q", s)
		}
		again, err := ParseRef(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
