package build

import (
	"regexp"
	"strings"

	"github.com/custody-dev/custody/attest"
)

// defaultEnvAllow are the environment variables recorded by default. A name
// ending in "*" is a prefix.
var defaultEnvAllow = []string{
	"PATH", "LANG", "SOURCE_DATE_EPOCH", "CI",
	"GOOS", "GOARCH", "GOARM", "GOAMD64", "GOFLAGS", "GOEXPERIMENT", "GOTOOLCHAIN",
	"CGO_ENABLED", "CGO_CFLAGS", "CGO_CPPFLAGS", "CGO_CXXFLAGS", "CGO_LDFLAGS",
	"CC", "CXX", "CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS",
	"NODE_ENV", "RUSTFLAGS", "CARGO_BUILD_TARGET", "JAVA_HOME",
	"GITHUB_*", "RUNNER_OS", "RUNNER_ARCH",
}

// secretWords mark an environment variable's value as secret when they
// appear anywhere in its name, case-insensitively.
var secretWords = []string{
	"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH", "PRIVATE",
	"JWT", "COOKIE", "SESSION",
}

// urlWithUserinfo matches a URL carrying credentials, e.g.
// https://user:token@host; such values are redacted whatever the name.
var urlWithUserinfo = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]+@`)

// isSecretName reports whether the variable name looks like it holds a secret.
func isSecretName(name string) bool {
	up := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// allowed reports whether name matches one of the patterns (exact names, or
// prefixes ending in "*").
func allowed(name string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// recordEnv returns the allow-listed variables of env (KEY=VALUE entries),
// with secret values replaced by attest.Redacted. It returns nil when none
// is allow-listed.
func recordEnv(env, extra []string) map[string]string {
	var out map[string]string
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if !allowed(name, defaultEnvAllow) && !allowed(name, extra) {
			continue
		}
		if isSecretName(name) || urlWithUserinfo.MatchString(value) {
			value = attest.Redacted
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = value
	}
	return out
}

// hermeticEnv returns the minimal environment of a hermetic build: PATH,
// HOME=home, LANG=C, SOURCE_DATE_EPOCH when set, and the variables of env
// named by extra.
func hermeticEnv(env []string, home string, extra []string) []string {
	out := []string{"HOME=" + home, "LANG=C"}
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch name {
		case "HOME", "LANG":
			continue
		case "PATH", "SOURCE_DATE_EPOCH":
			out = append(out, kv)
			continue
		}
		if allowed(name, extra) {
			out = append(out, kv)
		}
	}
	return out
}
