package build

import (
	"slices"
	"testing"
)

func TestNormalizeRemote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://github.com/org/repo.git", "git+https://github.com/org/repo"},
		{"https://github.com/org/repo", "git+https://github.com/org/repo"},
		{"https://user:ghp_secret@GitHub.com/org/repo.git/", "git+https://github.com/org/repo"},
		{"https://git.example.com:8443/org/repo?x=1#frag", "git+https://git.example.com:8443/org/repo"},
		{"http://git.example.com/org/repo", "git+http://git.example.com/org/repo"},
		{"git@github.com:org/repo.git", "git+https://github.com/org/repo"},
		{"github.com:org/repo", "git+https://github.com/org/repo"},
		{"ssh://git@github.com:22/org/repo.git", "git+https://github.com/org/repo"},
		{"git+ssh://git@github.com/org/repo", "git+https://github.com/org/repo"},
		{"git://example.org/repo.git", "git+https://example.org/repo"},
		{"file:///srv/git/repo.git", "git+file:///srv/git/repo.git"},
		{"/srv/git/repo", "git+file:///srv/git/repo"},
		{"../upstream", "git+file:///work/upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := normalizeRemote(tt.in, "/work/checkout"); got != tt.want {
				t.Fatalf("normalizeRemote(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseStatusZ(t *testing.T) {
	out := " M a.go\x00?? new dir/f.txt\x00R  new.go\x00old.go\x00"
	got := parseStatusZ(out)
	want := []string{"a.go", "new dir/f.txt", "new.go", "old.go"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// TestRecordEnv: secret-looking names are recorded as [REDACTED] (GITHUB_PAT
// and GITHUB_PASS too, which the GITHUB_* default allow-list used to record
// in cleartext), credentials inside other values are redacted in place,
// and each redaction is a finding that names the variable, not the value.
func TestRecordEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin", "GOOS=linux", "HOME=/root", "GITHUB_TOKEN=ghs_x", "GITHUB_REF=refs/heads/main",
		"MY_API_KEY=k", "NPM_AUTH=a", "EXTRA=1", "EXTRA_PRIVATE_THING=p", "CI=https://u:p@ci.example",
		"GITHUB_PAT=patvalue", "GITHUB_PASS=passvalue", "GOFLAGS=-ldflags=-X=main.apiToken=s3cr3t -trimpath",
	}
	got, findings := recordEnv(env, []string{"EXTRA*", "MY_API_KEY"})
	want := map[string]string{
		"PATH": "/usr/bin", "GOOS": "linux", "GITHUB_TOKEN": "[REDACTED]", "GITHUB_REF": "refs/heads/main",
		"MY_API_KEY": "[REDACTED]", "EXTRA": "1", "EXTRA_PRIVATE_THING": "[REDACTED]", "CI": "https://[REDACTED]@ci.example",
		"GITHUB_PAT": "[REDACTED]", "GITHUB_PASS": "[REDACTED]", "GOFLAGS": "-ldflags=-X=main.apiToken=[REDACTED] -trimpath",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	wantF := []string{
		"redacted environment CI (URL credentials)",
		"redacted environment EXTRA_PRIVATE_THING (secret-looking name)",
		"redacted environment GITHUB_PASS (secret-looking name)",
		"redacted environment GITHUB_PAT (secret-looking name)",
		"redacted environment GITHUB_TOKEN (secret-looking name)",
		"redacted environment GOFLAGS (secret-looking parameter)",
		"redacted environment MY_API_KEY (secret-looking name)",
	}
	if !slices.Equal(findings, wantF) {
		t.Errorf("findings = %q, want %q", findings, wantF)
	}
}
