package rebuild

import (
	"errors"
	"slices"
	"strings"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/lazyre"
)

// A provenance's recorded environment is the builder's word: a variable
// can turn an innocent-looking command into another program
// (GOFLAGS=-toolexec=…, LD_PRELOAD, BASH_ENV, NODE_OPTIONS,
// GIT_CONFIG_GLOBAL). A rebuild replays only the variables of replayable,
// each value checked; any other recorded variable is refused (and named in
// the rebuild attestation) unless the rebuilder names it with --env.

// machineLocal are recorded variables that name places on the builder's
// machine, not inputs of the build: the rebuilder's own (or none) are used.
// Replaying a recorded build cache location would have the rebuild read
// and write a cache the rebuilder did not choose to trust; the rebuilder
// opts in to its own with --env GOCACHE.
var machineLocal = map[string]bool{
	"PATH": true, "HOME": true, "JAVA_HOME": true,
	"GOCACHE": true, "GOMODCACHE": true, "GOPATH": true, "XDG_CACHE_HOME": true,
}

var (
	word      = lazyre.New(`^[A-Za-z0-9._,+@-]{0,64}$`)
	digits    = lazyre.New(`^[0-9]{1,19}$`)
	program   = lazyre.New(`^[A-Za-z0-9._+-]{1,64}$`) // a bare program name: no path, no arguments
	toolchain = lazyre.New(`^(local|auto|path|go[0-9][0-9a-z.-]*(\+(auto|path))?)$`)
)

// replayable are the variables a rebuild replays, each with its check.
var replayable = map[string]func(string) error{
	"LANG": matches(word), "CI": matches(word), "SOURCE_DATE_EPOCH": matches(digits),
	"GOOS": matches(word), "GOARCH": matches(word), "GOARM": matches(word), "GOAMD64": matches(word),
	"GOEXPERIMENT": matches(word), "GOTOOLCHAIN": matches(toolchain), "GOFLAGS": checkGoFlags,
	"CGO_ENABLED": oneOf("0", "1"),
	"CGO_CFLAGS":  checkCFlags, "CGO_CPPFLAGS": checkCFlags, "CGO_CXXFLAGS": checkCFlags, "CGO_LDFLAGS": checkCFlags,
	"CC": matches(program), "CXX": matches(program),
	"CFLAGS": checkCFlags, "CPPFLAGS": checkCFlags, "CXXFLAGS": checkCFlags, "LDFLAGS": checkCFlags,
	"NODE_ENV": oneOf("production", "development", "test"), "RUSTFLAGS": checkRustFlags,
	"CARGO_BUILD_TARGET": matches(word), "RUNNER_OS": matches(word), "RUNNER_ARCH": matches(word),
	"GITHUB_ACTIONS": matches(word), "GITHUB_SHA": matches(word), "GITHUB_REF": printable,
	"GITHUB_REF_NAME": printable, "GITHUB_REF_TYPE": matches(word), "GITHUB_REPOSITORY": printable,
	"GITHUB_REPOSITORY_OWNER": printable, "GITHUB_RUN_ID": matches(digits), "GITHUB_RUN_NUMBER": matches(digits),
	"GITHUB_RUN_ATTEMPT": matches(digits), "GITHUB_SERVER_URL": printable, "GITHUB_WORKFLOW": printable,
	"GITHUB_EVENT_NAME": matches(word), "GITHUB_JOB": printable, "GITHUB_HEAD_REF": printable, "GITHUB_BASE_REF": printable,
}

var errValue = errors.New("value not allowed")

func matches(re *lazyre.Regexp) func(string) error {
	return func(v string) error {
		if !re.MatchString(v) {
			return errValue
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return errValue
		}
		return nil
	}
}

// printable allows up to 256 printable ASCII characters.
func printable(v string) error {
	if len(v) > 256 {
		return errValue
	}
	for _, r := range v {
		if r < 0x20 || r > 0x7e {
			return errValue
		}
	}
	return nil
}

// goFlags are the go command flags GOFLAGS may set in a rebuild: none
// that runs another program (-toolexec, -exec), replaces files (-overlay,
// -modfile), or moves the build elsewhere (-C, -pkgdir).
var goFlags = []string{
	"a", "asan", "asmflags", "buildmode", "buildvcs", "compiler", "cover", "covermode", "coverpkg", "gcflags",
	"installsuffix", "ldflags", "linkshared", "mod", "modcacherw", "msan", "p", "pgo", "race", "tags", "trimpath", "v", "x",
}

// namedGoFlags are refused go flags a refusal may name.
var namedGoFlags = []string{"toolexec", "exec", "overlay", "modfile", "C", "pkgdir", "debug-actiongraph", "debug-trace", "json", "o"}

func checkGoFlags(v string) error {
	if err := printable(v); err != nil {
		return err
	}
	for _, f := range strings.Fields(v) {
		name, val, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if !strings.HasPrefix(f, "-") || !slices.Contains(goFlags, name) {
			if !slices.Contains(namedGoFlags, name) {
				return errors.New("a flag that is not a known build flag is not allowed") // never the value: it may hold a secret
			}
			return errors.New("flag -" + name + " not allowed")
		}
		// -ldflags=-extld=… names the linker program.
		if strings.Contains(val, "extld") {
			return errors.New("flag " + name + " names a linker")
		}
	}
	return nil
}

// checkCFlags refuses C compiler and linker flags that load or run other
// programs: -B (search path for the compiler's own programs), -wrapper,
// plugins, spec files, response files and -fuse-ld with a path.
func checkCFlags(v string) error {
	if err := printable(v); err != nil {
		return err
	}
	for _, f := range strings.Fields(v) {
		switch {
		case strings.HasPrefix(f, "-B"), strings.HasPrefix(f, "@"),
			strings.Contains(f, "wrapper"), strings.Contains(f, "plugin"), strings.Contains(f, "specs"),
			strings.HasPrefix(f, "-fuse-ld=") && strings.Contains(f, "/"):
			return errors.New("a flag that loads or runs another program (-B, -wrapper, a plugin, a spec or response file, -fuse-ld with a path) is not allowed")
		}
	}
	return nil
}

// checkRustFlags refuses a linker, unstable options and plugins.
func checkRustFlags(v string) error {
	if err := printable(v); err != nil {
		return err
	}
	if strings.Contains(v, "linker") || strings.Contains(v, "-Z") || strings.Contains(v, "plugin") {
		return errors.New("a linker, plugin or -Z option is not allowed")
	}
	return nil
}

// replayEnv returns the KEY=VALUE assignments of the recorded environment
// a rebuild replays, sorted, and the refused variables as "NAME: reason",
// sorted. Machine-local variables and redacted values are neither.
// rebuilderAllow are the rebuilder's --env names (a name ending in "*" is
// a prefix): such a variable is passed from the rebuilder's own
// environment when set there (hasOwn), else its recorded value is
// replayed unchecked, by the rebuilder's explicit choice.
func replayEnv(recorded map[string]string, rebuilderAllow []string, hasOwn func(string) bool) (assign, refused []string) {
	for k, v := range recorded {
		if machineLocal[k] || v == attest.Redacted || k == "" || strings.ContainsRune(k, '=') {
			continue
		}
		// custody build redacts the secrets inside a value: the rest is
		// not the value the build saw.
		const unknown = ": partly redacted by the builder (it held a secret), so its value is not known"
		if build.EnvNamed(k, rebuilderAllow) {
			switch {
			case hasOwn(k):
			case strings.Contains(v, attest.Redacted):
				refused = append(refused, k+unknown)
			default:
				assign = append(assign, k+"="+v)
			}
			continue
		}
		if strings.Contains(v, attest.Redacted) {
			refused = append(refused, k+unknown+" (pass --env "+k+" with your own value to set it)")
			continue
		}
		check, ok := replayable[k]
		if !ok {
			refused = append(refused, k+": not on the replay allow-list (pass --env "+k+" to replay it)")
			continue
		}
		if err := check(v); err != nil {
			refused = append(refused, k+": "+err.Error()+" (pass --env "+k+" to replay it)")
			continue
		}
		assign = append(assign, k+"="+v)
	}
	slices.Sort(assign)
	slices.Sort(refused)
	return assign, refused
}
