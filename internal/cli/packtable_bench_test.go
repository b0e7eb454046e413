package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/pack"
)

// BenchmarkPackVsServer: one decision of the pack table's allowed
// artifact (prod's policy, every kind of evidence: 7 bundles), by the
// server's path (custody policy check --server --json, in process:
// fetching the evidence and the policy over loopback HTTP, verifying,
// evaluating) and by the device (pack.Device: reading the pack, opening
// it, the rollback check against a fresh state, verifying, evaluating).
// bench/pack/results.md has the figures.
func BenchmarkPackVsServer(b *testing.B) {
	e := newTableEnv(b)
	e.pushPolicy("prod", prodPolicy)
	_, digest := e.full("bench", "prod", evidence{})
	e.srv.WaitRedFlags()
	p := e.makePack("prod", digest, false, false)
	extra, err := gate.KeyMaterial(e.pubs["audit"])
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"policy", "check", "--server", e.url, "--env", "prod", "--trust-root", e.path("root.json"),
		"--key", e.path("audit.pub"), "--json", "--digest", digest}
	b.Run("server", func(b *testing.B) {
		for b.Loop() {
			code, out, errs := e.run("deployer", args...)
			var res policyResult
			if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.Decision.Allowed {
				b.Fatalf("policy check: exit %d\n%s%s", code, out, errs)
			}
		}
	})
	state := filepath.Join(b.TempDir(), "edge.json") // the same pack again is no rollback
	b.Run("pack", func(b *testing.B) {
		for b.Loop() {
			d := &pack.Device{PackPath: p, TrustRootPath: e.path("device-root.json"), Extra: extra, StatePath: state,
				Options: pack.Options{Artifact: digest, Environment: "prod"}}
			res, err := d.Verify(context.Background())
			if err != nil || !res.Allowed {
				b.Fatalf("pack: %v", err)
			}
		}
	})
}
