// Package childenv prepares every process custody starts (build steps,
// rebuilds, deploy and health commands, diffoscope, git, toolchain probes)
// so that custody's own secrets never reach it: the child's environment is
// custody's without CUSTODY_PASSWORD, CUSTODY_PKCS11_PIN, CUSTODY_TOKEN,
// CUSTODY_SERVER_PASSWORD and any other CUSTODY_* variable whose name looks
// secret (redact.SecretName). Custody opens its keys and reads its tokens
// before it starts a child, so the child has nothing to gain from them.
//
// Every exec.Cmd custody makes comes from Command, and every environment it
// sets on one goes through Filter (or extends one that did); a test scans
// the source tree and fails when new code bypasses this package.
package childenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/custody-dev/custody/internal/redact"
)

// Secrets are the variables custody reads its own secrets from. Filter
// removes them, and any other CUSTODY_* variable whose name looks secret.
var Secrets = []string{"CUSTODY_PASSWORD", "CUSTODY_PKCS11_PIN", "CUSTODY_TOKEN", "CUSTODY_SERVER_PASSWORD"}

// IsSecret reports whether the variable name is one of custody's secrets.
func IsSecret(name string) bool {
	up := strings.ToUpper(name)
	return strings.HasPrefix(up, "CUSTODY_") && redact.SecretName(up)
}

// Filter returns env (KEY=VALUE entries) without custody's secrets. It
// never modifies env.
func Filter(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !IsSecret(name) {
			out = append(out, kv)
		}
	}
	return out
}

var hideOnce sync.Once

// Environ returns custody's environment without its secrets.
func Environ() []string { return Filter(os.Environ()) }

// Command is exec.CommandContext with Env set to Environ(). A caller that
// sets another Env must pass it through Filter, or append to cmd.Env.
//
// Before the first child starts, custody's own /proc/PID/environ (which
// still holds the secrets it was started with) is made unreadable to
// children of the same user (hideEnviron).
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	hideOnce.Do(hideEnviron)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = Environ()
	return cmd
}
