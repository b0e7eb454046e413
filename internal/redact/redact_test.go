package redact

import (
	"slices"
	"strings"
	"testing"
)

func TestSecretName(t *testing.T) {
	secret := []string{
		"GITHUB_PAT", "GITHUB_PASS", "GITHUB_TOKEN", "NPM_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "DB_PWD",
		"SIGNING_KEY", "GOOGLE_CREDENTIALS", "DOCKER_AUTH_CONFIG", "SSH_PRIVATE_KEY", "githubPat", "apiToken",
		"--token", "-password", "CUSTODY_PKCS11_PIN", "CUSTODY_PASSWORD", "CUSTODY_TOKEN", "CUSTODY_SERVER_PASSWORD",
		"SENTRY_DSN", "HTTP_AUTHORIZATION", "main.apiKey", "GITHUB_OTP", "session_cookie",
	}
	plain := []string{
		"PATH", "PWD", "OLDPWD", "GOPATH", "GOFLAGS", "GIT_AUTHOR_NAME", "BYPASS_CACHE", "GITHUB_SHA", "GITHUB_REF",
		"LANG", "CI", "PATCH_LEVEL", "COMPASS", "RUNNER_OS", "--out", "SPINNER", "",
	}
	for _, n := range secret {
		if !SecretName(n) {
			t.Errorf("SecretName(%q) = false, want true", n)
		}
	}
	for _, n := range plain {
		if SecretName(n) {
			t.Errorf("SecretName(%q) = true, want false", n)
		}
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		in, want string
		kind     string
	}{
		{"Authorization: Bearer abcdef0123456789", "Authorization: Bearer [REDACTED]", KindAuthHeader},
		{"-H=Authorization: token s3cr3tvalue", "-H=Authorization: token [REDACTED]", KindAuthHeader},
		{"bearer eyJhbGciOiJIUzI1NiJ9x", "bearer [REDACTED]", KindAuthHeader},
		{"https://alice:hunter2@example.com/repo.git", "https://[REDACTED]@example.com/repo.git", KindURLUser},
		{"git+ssh://tok@host/x", "git+ssh://[REDACTED]@host/x", KindURLUser},
		{"https://example.com/x?user=a&password=hunter2&x=1", "https://example.com/x?user=a&password=[REDACTED]&x=1", KindParameter},
		{"https://example.com/x?access_token=abc", "https://example.com/x?access_token=[REDACTED]", KindParameter},
		{"-ldflags=-X=main.apiToken=s3cr3t -trimpath", "-ldflags=-X=main.apiToken=[REDACTED] -trimpath", KindParameter},
		{"-ldflags=-X github.com/a/b.Password=s3cr3t", "-ldflags=-X github.com/a/b.Password=[REDACTED]", KindParameter},
		{"--password=hunter2", "--password=[REDACTED]", KindParameter},
		{"ghp_" + strings.Repeat("a1", 18), Marker, KindToken},
		{"x gho_" + strings.Repeat("B", 36) + " y", "x " + Marker + " y", KindToken},
		{"github_pat_11AAAAAAA0_" + strings.Repeat("z", 40), Marker, KindToken},
		{"glpat-" + strings.Repeat("x", 20), Marker, KindToken},
		{"xoxb-1234567890-abcdef", Marker, KindToken},
		{"AKIAIOSFODNN7EXAMPLE", Marker, KindToken},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig_part-1", Marker, KindToken},
		{"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\nrest", Marker + "\nrest", KindPEM},
		{"-----BEGIN PRIVATE KEY-----\ntruncated", Marker, KindPEM},
		// Quoted values, JSON members and --flag value inside a script.
		{`mysql --password="hunter2" db`, `mysql --password="[REDACTED]" db`, KindParameter},
		{`PASSWORD='hunter 2' make`, `PASSWORD='[REDACTED]' make`, KindParameter},
		{`{"password":"hunter2","user":"a"}`, `{"password":"[REDACTED]","user":"a"}`, KindParameter},
		{`{"api_key": "hunter2"}`, `{"api_key": "[REDACTED]"}`, KindParameter},
		{`curl --token abc123def https://x`, `curl --token [REDACTED] https://x`, KindParameter},
		{`mysql -u root --password 'hunter 2' db`, `mysql -u root --password '[REDACTED]' db`, KindParameter},
	}
	for _, tt := range tests {
		got, kinds := Value(tt.in)
		if got != tt.want {
			t.Errorf("Value(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !slices.Contains(kinds, tt.kind) {
			t.Errorf("Value(%q) kinds = %q, want %q among them", tt.in, kinds, tt.kind)
		}
	}
	for _, v := range []string{
		"", "/usr/local/bin:/usr/bin", "-trimpath -mod=readonly", "go build -o dist/app ./cmd/app", "C.UTF-8",
		"https://example.com/repo.git", "GOFLAGS=-ldflags=-s -w", "x=1&y=2", "token", "git@github.com:o/r.git",
		"go test -run TestToken ./...", "Bearer", "1700000000",
		`go build -o "dist/app" ./cmd/app`, `{"user":"a","path":"/x"}`, `make --jobs 4 token`,
	} {
		if got, kinds := Value(v); got != v || kinds != nil {
			t.Errorf("Value(%q) = %q, %q; want it unchanged", v, got, kinds)
		}
	}
}

func TestEnvAndArgs(t *testing.T) {
	env := map[string]string{
		"GITHUB_PAT":  "plainvalue",
		"GITHUB_PASS": "hunter2",
		"GITHUB_SHA":  "0123abcd",
		"GOFLAGS":     "-ldflags=-X=main.token=s3cr3t",
		"PATH":        "/usr/bin",
	}
	f := Env(env)
	want := map[string]string{"GITHUB_PAT": Marker, "GITHUB_PASS": Marker, "GITHUB_SHA": "0123abcd",
		"GOFLAGS": "-ldflags=-X=main.token=" + Marker, "PATH": "/usr/bin"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env[%s] = %q, want %q", k, env[k], v)
		}
	}
	var got []string
	for _, x := range f {
		got = append(got, x.String())
	}
	wantF := []string{
		"redacted environment GITHUB_PASS (secret-looking name)",
		"redacted environment GITHUB_PAT (secret-looking name)",
		"redacted environment GOFLAGS (secret-looking parameter)",
	}
	if !slices.Equal(got, wantF) {
		t.Errorf("findings = %q, want %q", got, wantF)
	}
	for _, x := range got {
		if strings.Contains(x, "hunter2") || strings.Contains(x, "s3cr3t") {
			t.Errorf("finding %q holds the secret", x)
		}
	}

	argv := []string{"curl", "-H", "Authorization: Bearer abcdefgh12345678", "--token", "tok123", "https://u:p@h/x", "out"}
	orig := slices.Clone(argv)
	red, fs := Args(argv)
	wantArgs := []string{"curl", "-H", "Authorization: Bearer " + Marker, "--token", Marker, "https://" + Marker + "@h/x", "out"}
	if !slices.Equal(red, wantArgs) {
		t.Errorf("Args = %q, want %q", red, wantArgs)
	}
	if !slices.Equal(argv, orig) {
		t.Errorf("Args modified its argument")
	}
	if len(fs) != 3 || fs[0].Where != "command argument 2" || fs[1].Where != "command argument 4" || fs[2].Where != "command argument 5" {
		t.Errorf("findings = %v", fs)
	}
	if red, fs := Args([]string{"go", "build", "./..."}); fs != nil || len(red) != 3 {
		t.Errorf("clean argv changed: %q %v", red, fs)
	}
}

// FuzzValue holds the scanner to three properties on any input: it does
// not panic, a second scan finds nothing more (a redacted value is
// stable), and a token planted between newlines never survives.
func FuzzValue(f *testing.F) {
	for _, s := range []string{
		"Authorization: Bearer abcdef0123456789", "https://a:b@h/?password=x", "-ldflags=-X=main.apiToken=s",
		"-----BEGIN PRIVATE KEY-----\nx", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.x", "PATH=/usr/bin", "",
		"token: Bearer ", "authorization=", "[REDACTED]", "x=[REDACTED]y",
	} {
		f.Add(s)
	}
	planted := "ghp_" + strings.Repeat("Zq9", 12)
	f.Fuzz(func(t *testing.T, s string) {
		once, _ := Value(s)
		if twice, kinds := Value(once); kinds != nil {
			t.Fatalf("second scan of %q found %q: %q", once, kinds, twice)
		}
		out, kinds := Value(s + "\n" + planted + "\n" + s)
		if strings.Contains(out, planted) {
			t.Fatalf("planted token survived in %q", out)
		}
		if kinds == nil {
			t.Fatalf("no finding for a planted token")
		}
	})
}

// FuzzParameters holds the hand-written parameter scan to its reference,
// parameterRE.
func FuzzParameters(f *testing.F) {
	for _, s := range []string{
		"a=b", "x?user=a&password=hunter2&x=1", "-ldflags=-X=main.apiToken=s3cr3t -trimpath", "X-Api-Key: abc",
		"9token=x", "a=b=c", "token:\tv", "token: ", "token=[REDACTED]", "Authorization: Bearer x", "_=_", "x:y=z",
	} {
		f.Add(s)
	}
	ref := pass{kind: KindParameter, re: parameterRE, replace: redactParameter}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotOK := redactParameters(s)
		want, wantOK := replaceAll(s, ref)
		if got != want || gotOK != wantOK {
			t.Fatalf("redactParameters(%q) = %q, %v; parameterRE gives %q, %v", s, got, gotOK, want, wantOK)
		}
	})
}
