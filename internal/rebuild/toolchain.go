package rebuild

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/sandbox"
)

// toolchainTimeout bounds each version probe.
const toolchainTimeout = 10 * time.Second

// toolchainNames are the names of recorded that custody can probe.
func toolchainNames(recorded map[string]string) []string {
	var out []string
	for name := range recorded {
		if _, ok := build.VersionArgs(name); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// probeToolchains returns the version of every toolchain named in
// recorded, as internal/build records it, probed in the sandbox cfg
// describes: the probe runs in the untrusted clone (a go.mod can name
// another toolchain), so it is as untrusted as the build. A toolchain
// that is not installed, or whose version custody cannot probe, is absent
// from the result.
func probeToolchains(ctx context.Context, recorded map[string]string, cfg sandbox.Config) map[string]string {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		got = map[string]string{}
	)
	for name := range recorded {
		args, ok := build.VersionArgs(name)
		if !ok {
			continue
		}
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		wg.Go(func() {
			v := probe(ctx, path, args, cfg)
			if v == "" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			got[name] = v
		})
	}
	wg.Wait()
	return got
}

// probe runs one version probe in the sandbox, as build.RunVersionProbe
// reads it.
func probe(ctx context.Context, path string, args []string, cfg sandbox.Config) string {
	ctx, cancel := context.WithTimeout(ctx, toolchainTimeout)
	defer cancel()
	cmd, cleanup, err := sandbox.Command(ctx, cfg, append([]string{path}, args...))
	if err != nil {
		return ""
	}
	defer cleanup()
	return build.RunVersionProbe(cmd)
}

// ToolchainDiff is one recorded toolchain the rebuilder does not have in
// the same version.
type ToolchainDiff struct {
	Name     string
	Recorded string
	Have     string // "" when not installed
}

func (d ToolchainDiff) String() string {
	if d.Have == "" {
		return d.Name + ": recorded " + quote(d.Recorded) + ", not installed here"
	}
	return d.Name + ": recorded " + quote(d.Recorded) + ", here " + quote(d.Have)
}

func quote(s string) string { return "\"" + s + "\"" }

// diffToolchains lists the recorded toolchains whose versions differ from
// have, sorted by name.
func diffToolchains(recorded, have map[string]string) []ToolchainDiff {
	var out []ToolchainDiff
	for name, v := range recorded {
		if have[name] != v {
			out = append(out, ToolchainDiff{Name: name, Recorded: v, Have: have[name]})
		}
	}
	slices.SortFunc(out, func(a, b ToolchainDiff) int { return strings.Compare(a.Name, b.Name) })
	return out
}
