package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"custody": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		// custody-exit N ARGS... runs custody and succeeds only when it exits with N.
		"custody-exit": func() {
			want, err := strconv.Atoi(os.Args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "custody-exit: first argument must be the expected exit code")
				os.Exit(100)
			}
			if got := Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr); got != want {
				fmt.Fprintf(os.Stderr, "custody-exit: want exit code %d, got %d\n", want, got)
				os.Exit(101)
			}
			os.Exit(0)
		},
	})
}

// goEnv holds the Go toolchain's cache locations, read once.
var goEnv = map[string]string{}

func TestScripts(t *testing.T) {
	if out, err := exec.Command("go", "env", "GOCACHE", "GOPATH", "GOMODCACHE", "GOROOT").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i, k := range []string{"GOCACHE", "GOPATH", "GOMODCACHE", "GOROOT"} {
			if i < len(lines) && lines[i] != "" {
				goEnv[k] = lines[i]
			}
		}
	}
	corpus, err := filepath.Abs("../../testdata/corpus")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("CORPUS", corpus)
			env.Setenv("CUSTODY_PASSWORD", "correct horse battery staple")
			env.Setenv("GIT_AUTHOR_NAME", "Test Author")
			env.Setenv("GIT_AUTHOR_EMAIL", "author@example.com")
			env.Setenv("GIT_COMMITTER_NAME", "Test Author")
			env.Setenv("GIT_COMMITTER_EMAIL", "author@example.com")
			env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
			// HOME outside the work tree: tools the build probes (go, rustup)
			// write there, and the script's git repository must stay clean.
			home := env.WorkDir + "-home"
			if err := os.MkdirAll(home, 0o755); err != nil {
				return err
			}
			env.Setenv("HOME", home)
			// Keep the real Go caches: HOME moved, and a script that builds
			// Go code should not start from an empty cache.
			for k, v := range goEnv {
				env.Setenv(k, v)
			}
			return nil
		},
	})
}
