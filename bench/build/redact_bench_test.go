package buildbench

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/redact"
)

// A large CI environment: 2,000 variables (GITHUB_*, RUNNER_*, compiler
// flags, paths, a few URLs and secrets) and a 2,000-argument compiler
// command line (-I, -D, -o, a URL, one bearer header).
func fixture() (map[string]string, []string) {
	env := map[string]string{}
	for i := range 2000 {
		switch i % 10 {
		case 0:
			env[fmt.Sprintf("GITHUB_VAR_%d", i)] = fmt.Sprintf("refs/heads/feature-%d", i)
		case 1:
			env[fmt.Sprintf("CGO_CFLAGS_%d", i)] = "-O2 -g -I/usr/include/x86_64-linux-gnu -DNDEBUG=1"
		case 2:
			env[fmt.Sprintf("PATH_%d", i)] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		case 3:
			env[fmt.Sprintf("MIRROR_%d", i)] = "https://proxy.example.com/go?mode=direct&region=eu"
		case 4:
			env[fmt.Sprintf("GOFLAGS_%d", i)] = "-trimpath -mod=readonly -ldflags=-s -w -X=main.version=1.2.3"
		case 5:
			env[fmt.Sprintf("SERVICE_TOKEN_%d", i)] = "ghp_" + strings.Repeat("x", 36)
		default:
			env[fmt.Sprintf("RUNNER_VAR_%d", i)] = fmt.Sprintf("value-%d-%s", i, strings.Repeat("a", 30))
		}
	}
	args := []string{"cc"}
	for i := range 2000 {
		switch i % 4 {
		case 0:
			args = append(args, fmt.Sprintf("-I/src/include/module%d", i))
		case 1:
			args = append(args, fmt.Sprintf("-DFEATURE_%d=1", i))
		case 2:
			args = append(args, fmt.Sprintf("src/module%d/file.c", i))
		default:
			args = append(args, "-o", fmt.Sprintf("out/file%d.o", i))
		}
	}
	args = append(args, "-H", "Authorization: Bearer abcdefghijklmnop", "https://user:pw@example.com/x")
	return env, args
}

// record is what recording costs without redaction: copy the variables and
// arguments and encode them into the provenance's JSON.
func record(b *testing.B, env map[string]string, args []string) {
	out, err := json.Marshal(struct {
		Env  map[string]string
		Args []string
	}{env, args})
	if err != nil || len(out) == 0 {
		b.Fatal(err)
	}
}

func BenchmarkRecord(b *testing.B) {
	env, args := fixture()
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			e, a := maps.Clone(env), slices.Clone(args)
			record(b, e, a)
		}
	})
	b.Run("redacted", func(b *testing.B) {
		for b.Loop() {
			e, a := maps.Clone(env), slices.Clone(args)
			found := redact.Env(e)
			a, more := redact.Args(a)
			if len(found) == 0 || len(more) == 0 {
				b.Fatal("nothing redacted")
			}
			record(b, e, a)
		}
	})
}
