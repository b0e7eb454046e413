package build

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// toolchainTimeout bounds each version probe.
const toolchainTimeout = 5 * time.Second

// toolchainProbes are the toolchains recorded when found on PATH: name,
// then the arguments that print its version on the first line.
var toolchainProbes = []struct {
	name string
	args []string
}{
	{"go", []string{"version"}},
	{"node", []string{"--version"}},
	{"gcc", []string{"--version"}},
	{"rustc", []string{"--version"}},
	{"cargo", []string{"--version"}},
	{"python3", []string{"--version"}},
	{"java", []string{"-version"}}, // prints on stderr
}

// toolchainDetection is a running detection; wait returns its result.
type toolchainDetection struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	got map[string]string
}

// startToolchainDetection probes every toolchain concurrently, in dir with
// env, while the build runs.
func startToolchainDetection(ctx context.Context, dir string, env []string) *toolchainDetection {
	d := &toolchainDetection{}
	for _, p := range toolchainProbes {
		path, err := exec.LookPath(p.name)
		if err != nil {
			continue
		}
		d.wg.Go(func() {
			v := probeVersion(ctx, path, p.args, dir, env)
			if v == "" {
				return
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.got == nil {
				d.got = make(map[string]string)
			}
			d.got[p.name] = v
		})
	}
	return d
}

func (d *toolchainDetection) wait() map[string]string {
	d.wg.Wait()
	return d.got
}

// probeVersion returns the first line the tool prints, or "" on failure.
func probeVersion(ctx context.Context, path string, args []string, dir string, env []string) string {
	ctx, cancel := context.WithTimeout(ctx, toolchainTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return ""
	}
	line := firstLine(string(out))
	const max = 200
	if len(line) > max {
		line = line[:max]
	}
	return strings.ToValidUTF8(line, "")
}
