package build

import (
	"slices"
	"strings"

	"github.com/custody-dev/custody/internal/redact"
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

// EnvNamed reports whether the variable name matches one of patterns
// (exact names, or prefixes ending in "*"), as Options.EnvAllow does.
func EnvNamed(name string, patterns []string) bool { return allowed(name, patterns) }

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

// recordEnv returns the allow-listed variables of env (KEY=VALUE entries)
// with their secrets redacted (redact.Env: the whole value of a name that
// looks secret, the credentials found in the others), and one finding per
// redacted variable naming it, never its value. The map is nil when no
// variable is allow-listed.
func recordEnv(env, extra []string) (map[string]string, []string) {
	var out map[string]string
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if !allowed(name, defaultEnvAllow) && !allowed(name, extra) {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = value
	}
	return out, findingStrings(redact.Env(out))
}

// recordCommand returns argv with its secrets redacted (redact.Args) and
// one finding per redacted argument.
func recordCommand(argv []string) ([]string, []string) {
	red, found := redact.Args(argv)
	return slices.Clone(red), findingStrings(found)
}

func findingStrings(fs []redact.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.String())
	}
	return out
}

// HermeticEnv returns the minimal environment of a hermetic build: PATH,
// HOME=home, LANG=C, SOURCE_DATE_EPOCH when set, and the variables of env
// named by extra (names, or prefixes ending in "*").
func HermeticEnv(env []string, home string, extra []string) []string {
	return hermeticEnv(env, home, extra)
}

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
