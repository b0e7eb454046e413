package build

import (
	"strings"
	"testing"
)

const (
	hexA = "c8d8123a262bd94feca2723fe165758f7532781ee36b238d0d8b8d6dfc2cbeaa"
	hexB = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func TestParseSubject(t *testing.T) {
	tests := []struct {
		in       string
		wantName string
		wantErr  string
	}{
		{"app@sha256:" + hexA, "app", ""},
		{"ghcr.io/org/app@1.2@sha256:" + hexA, "ghcr.io/org/app@1.2", ""},
		{"app", "", "want NAME@sha256:HEX"},
		{"@sha256:" + hexA, "", "empty"},
		{"app@sha512:" + hexA + hexA, "", "must be sha256"},
		{"app@sha256:" + strings.ToUpper(hexA), "", "lowercase"},
		{"app@sha256:" + hexA[:10], "", "64 characters"},
		{"a\nb@sha256:" + hexA, "", "control character"},
		{"\xff@sha256:" + hexA, "", "UTF-8"},
		{strings.Repeat("n", maxSubjectName+1) + "@sha256:" + hexA, "", "longer than"},
	}
	for _, tt := range tests {
		t.Run(short(tt.in), func(t *testing.T) {
			s, err := ParseSubject(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.wantName || s.Digest["sha256"] != hexA || len(s.Digest) != 1 {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

func TestParseSubjectsFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{"mixed", "# images\nimg@sha256:" + hexA + "\n\n" + hexB + "  dist/app.tar.gz\r\n" + hexA + " *bin/app\n",
			map[string]string{"img": hexA, "dist/app.tar.gz": hexB, "bin/app": hexA}, ""},
		{"uppercase sha256sum hex", strings.ToUpper(hexA) + "  x\n", map[string]string{"x": hexA}, ""},
		{"escaped name", `\` + hexA + `  a\\b` + "\n", map[string]string{`a\b`: hexA}, ""},
		{"escaped newline rejected", `\` + hexA + `  a\nb` + "\n", nil, "control character"},
		{"duplicate same", "x@sha256:" + hexA + "\n" + hexA + "  x\n", map[string]string{"x": hexA}, ""},
		{"duplicate different", "x@sha256:" + hexA + "\nx@sha256:" + hexB + "\n", nil, "line 2: subject \"x\" listed twice"},
		{"garbage", "hello world\n", nil, "line 1"},
		{"one space", hexA + " x\n", nil, "line 1"},
		{"empty", "", map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, err := ParseSubjectsFile([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(subs) != len(tt.want) {
				t.Fatalf("got %+v, want %v", subs, tt.want)
			}
			for _, s := range subs {
				if tt.want[s.Name] != s.Digest["sha256"] {
					t.Errorf("%s = %s, want %s", s.Name, s.Digest["sha256"], tt.want[s.Name])
				}
			}
		})
	}
}

func FuzzParseSubject(f *testing.F) {
	f.Add("app@sha256:" + hexA)
	f.Add("a@b@sha256:" + hexB)
	f.Add("@")
	f.Fuzz(func(t *testing.T, s string) {
		sub, err := ParseSubject(s)
		if err != nil {
			return
		}
		if err := checkSubject(sub); err != nil {
			t.Fatalf("ParseSubject(%q) returned an invalid subject: %v", s, err)
		}
		if sub.Name+"@sha256:"+sub.Digest["sha256"] != s {
			t.Fatalf("ParseSubject(%q) = %+v: not a round trip", s, sub)
		}
	})
}

func FuzzParseSubjectsFile(f *testing.F) {
	f.Add([]byte("# c\nimg@sha256:" + hexA + "\n" + hexB + "  dist/app\n"))
	f.Add([]byte(`\` + hexA + `  a\\b`))
	f.Fuzz(func(t *testing.T, b []byte) {
		subs, err := ParseSubjectsFile(b)
		if err != nil {
			return
		}
		seen := make(map[string]bool)
		for _, s := range subs {
			if err := checkSubject(s); err != nil {
				t.Fatalf("invalid subject %+v: %v", s, err)
			}
			if seen[s.Name] {
				t.Fatalf("duplicate subject %q", s.Name)
			}
			seen[s.Name] = true
		}
	})
}
