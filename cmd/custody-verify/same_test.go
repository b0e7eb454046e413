package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/cli"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
)

// TestSameAsCustodyVerify: custody-verify and custody verify --pack
// decide every hostile pack alike: the same exit code, the same first
// error line, the same output, and the device's state file unchanged by
// every refused pack (the device had seen checkpoint size 20).
func TestSameAsCustodyVerify(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	f := packtest.New(t)
	dir := t.TempDir()
	rootJSON, err := f.Root.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rootPath := filepath.Join(dir, "root.json")
	os.WriteFile(rootPath, rootJSON, 0o644)
	at := func(n uint64, edit func(c *pack.Contents)) []byte {
		c := f.Contents(t)
		c.Checkpoints = [][]byte{packtest.Checkpoint(t, "log.test", f.LogKey, n)}
		if edit != nil {
			edit(c)
		}
		return f.Build(t, c, f.Packer)
	}
	good := at(20, nil)
	entries := func(change func(es []any) []any) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		m["entries"] = change(m["entries"].([]any))
		b, _ := json.Marshal(m)
		return b
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte{'{'}, 1<<20))
	zw.Close()
	staging := f.SignedPolicy(t, "staging", "")
	stagingJSON, _ := staging.Marshal()
	cases := []struct {
		name string
		pack []byte
		code int
	}{
		{"denied", good, 1},
		{"rolled back", at(10, nil), 1},
		{"expired", at(20, func(c *pack.Contents) { c.Created = f.Now.Add(-10 * 24 * time.Hour); c.Expires = f.Now.Add(-time.Hour) }), 1},
		{"from the future", at(20, func(c *pack.Contents) { c.Created = f.Now.Add(time.Hour) }), 1},
		{"quarantine not consulted", at(20, func(c *pack.Contents) { c.Quarantine = pack.Quarantine{} }), 1},
		{"quarantined", at(20, func(c *pack.Contents) { c.Quarantine.Incident = "3" }), 1},
		{"another environment's policy", at(20, func(c *pack.Contents) { c.SignedPolicy, c.PolicyDigest = stagingJSON, staging.Digest() }), 1},
		{"signed by a builder key", f.Build(t, f.Contents(t), f.Builder), 1},
		{"entry changed", entries(func(es []any) []any {
			es[0].(map[string]any)["content"] = []byte(`{}`)
			return es
		}), 1},
		{"entry added", entries(func(es []any) []any {
			return append(es, map[string]any{"name": "bundle/0001", "content": []byte(`{}`)})
		}), 1},
		{"entry given twice", entries(func(es []any) []any { return append(es, es[0]) }), 2},
		{"path in a name", entries(func(es []any) []any {
			return append(es, map[string]any{"name": "bundle/../../etc/passwd", "content": []byte(`x`)})
		}), 2},
		{"truncated", good[:len(good)/2], 2},
		{"gzip", gz.Bytes(), 2},
		{"empty", nil, 2},
		{"not JSON", []byte("\x00\x01"), 2},
	}
	state := filepath.Join(dir, "state.json")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "p.custody")
			os.WriteFile(p, tc.pack, 0o644)
			var outs, errs [2]string
			var codes [2]int
			var states [2][]byte
			for i := range 2 {
				os.Remove(state)
				st, err := pack.LoadState(state)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := pack.Check(context.Background(), at(20, nil), f.Options(), st, nil); err != nil {
					t.Fatal(err)
				}
				before, _ := os.ReadFile(state)
				args := []string{"--pack", p, "--env", "prod", "--trust-root", rootPath, "--state", state, "--digest", f.Artifact}
				var out, errb bytes.Buffer
				if i == 0 {
					codes[i] = run(context.Background(), args, &out, &errb)
				} else {
					codes[i] = cli.Main(append([]string{"verify"}, args...), nil, &out, &errb)
				}
				outs[i], errs[i] = out.String(), strings.ReplaceAll(errb.String(), "custody: ", "")
				states[i], _ = os.ReadFile(state)
				if codes[i] != 0 && !bytes.Equal(before, states[i]) {
					t.Errorf("a refused pack changed the state:\n%s\n%s", before, states[i])
				}
			}
			first := func(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
			t.Logf("exit %d: %s", codes[0], first(errs[0]))
			if codes[0] != tc.code || codes[1] != tc.code || first(errs[0]) != first(errs[1]) || outs[0] != outs[1] {
				t.Fatalf("custody-verify: exit %d\n%s%s\ncustody verify --pack: exit %d\n%s%s\nwant exit %d", codes[0], outs[0], errs[0], codes[1], outs[1], errs[1], tc.code)
			}
		})
	}
}
