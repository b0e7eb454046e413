package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/policy"
)

// reopen opens the server in dir again (a restart), serving it until
// stop is called.
func reopen(t *testing.T, dir string, root []byte) (ts *testServer, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Dir: dir, TrustRoot: root, PublicURL: "http://" + ln.Addr().String(), BatchMaxAge: 5 * time.Millisecond}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("restart: %v", err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	ts = &testServer{Server: s, url: cfg.PublicURL, dir: dir, tokens: map[api.Role]string{}}
	for _, r := range []api.Role{api.RoleAdmin, api.RoleAuditor} {
		if ts.tokens[r], err = tokenfile.CreateToken(dir, r, "", ""); err != nil { // a restart: names ROLE-ID stay unique
			t.Fatal(err)
		}
	}
	return ts, func() { hs.Close(); s.Close() }
}

// policyFiles is what a crash may leave of DIR/policies/ENV.*.
type policyFiles struct{ envelope, yaml []byte }

func readPolicyFiles(t *testing.T, dir, env string) policyFiles {
	t.Helper()
	var f policyFiles
	f.envelope, _ = os.ReadFile(filepath.Join(dir, "policies", env+".envelope.json"))
	f.yaml, _ = os.ReadFile(filepath.Join(dir, "policies", env+".yaml"))
	return f
}

func (f policyFiles) restore(t *testing.T, dir, env string) {
	t.Helper()
	for name, b := range map[string][]byte{env + ".envelope.json": f.envelope, env + ".yaml": f.yaml} {
		p := filepath.Join(dir, "policies", name)
		if b == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyCrashBetweenAuditAndFiles: a push writes the policy.changed
// audit entry, then ENV.envelope.json, then ENV.yaml. Whatever a crash
// leaves of the files, the restarted server serves the version its newest
// audit entry records, and refuses to start when the files hold a policy
// the audit trail does not record.
func TestPolicyCrashBetweenAuditAndFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers")
	}
	ctx := context.Background()
	dir := t.TempDir()
	_, rootRaw, admins := governedRoot(t)
	first, stopFirst := reopen(t, dir, rootRaw)
	admin := newClient(t, first, api.RoleAdmin)
	v1 := signedPolicy(t, "1", admins[0], admins[1])
	if _, err := admin.PushPolicy(ctx, v1, "alice"); err != nil {
		t.Fatal(err)
	}
	filesV1 := readPolicyFiles(t, dir, "prod")
	v2 := signedPolicy(t, "2", admins[1], admins[2])
	if _, err := admin.PushPolicy(ctx, v2, "bob"); err != nil {
		t.Fatal(err)
	}
	filesV2 := readPolicyFiles(t, dir, "prod")
	// A policy of another environment whose files the crash took entirely.
	staging := inEnv(t, v1, "staging", admins[:2]...)
	if _, err := admin.PushPolicy(ctx, staging, "carol"); err != nil {
		t.Fatal(err)
	}
	stopFirst()

	check := func(t *testing.T, want *policy.Signed, env string) {
		t.Helper()
		ts, stop := reopen(t, dir, nil)
		defer stop()
		f := readPolicyFiles(t, dir, env)
		if !bytes.Equal(f.yaml, want.Payload) {
			t.Errorf("%s.yaml after restart = %q; want version %d", env, f.yaml, want.Policy().Version)
		}
		if sp, err := policy.ParseSigned(f.envelope); err != nil || sp.Digest() != want.Digest() {
			t.Errorf("%s.envelope.json after restart: %v; want %s", env, err, want.Digest())
		}
		got, err := newClient(t, ts, api.RoleAuditor).Policy(ctx, env)
		if err != nil || got.Digest() != want.Digest() {
			t.Errorf("served policy of %s after restart = %v, %v; want version %d %s", env, got, err, want.Policy().Version, want.Digest())
		}
	}
	t.Run("nothing lost", func(t *testing.T) { check(t, v2, "prod") })
	t.Run("files of the previous version", func(t *testing.T) {
		filesV1.restore(t, dir, "prod")
		check(t, v2, "prod")
	})
	t.Run("envelope written, yaml not", func(t *testing.T) {
		policyFiles{envelope: filesV2.envelope, yaml: filesV1.yaml}.restore(t, dir, "prod")
		check(t, v2, "prod")
	})
	t.Run("no file yet", func(t *testing.T) {
		policyFiles{}.restore(t, dir, "prod")
		check(t, v2, "prod")
	})
	t.Run("first push of an environment, no file", func(t *testing.T) {
		policyFiles{}.restore(t, dir, "staging")
		// Even without the mark, which a restart reads to find new
		// environments quickly.
		os.Remove(filepath.Join(dir, "policies", ".reconciled"))
		check(t, staging, "staging")
	})
	t.Run("replay refused after the restart", func(t *testing.T) {
		filesV1.restore(t, dir, "prod")
		ts, stop := reopen(t, dir, nil)
		defer stop()
		_, err := newClient(t, ts, api.RoleAdmin).PushPolicy(ctx, v1, "mallory")
		wantStatus(t, "replay of v1 after a crash left v1's files", err, http.StatusConflict)
	})

	// Files the audit trail does not record: the server refuses to start.
	for _, tc := range []struct {
		name  string
		env   string
		files policyFiles
	}{
		{"environment never pushed", "dev", policyFiles{envelope: mustMarshal(t, inEnv(t, v1, "dev", admins[:2]...))}},
		{"version above the logged one", "prod", policyFiles{envelope: mustMarshal(t, signedPolicy(t, "3", admins[0], admins[1])), yaml: filesV2.yaml}},
		{"other bytes at the logged version", "prod", policyFiles{envelope: mustMarshal(t, signedPolicy(t, "2  # not logged", admins[0], admins[1])), yaml: filesV2.yaml}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.files.restore(t, dir, tc.env)
			defer filesV2.restore(t, dir, "prod")
			defer os.Remove(filepath.Join(dir, "policies", "dev.envelope.json"))
			s, err := server.Open(ctx, server.Config{Dir: dir, BatchMaxAge: 5 * time.Millisecond})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, server.ErrPolicyAhead) {
				t.Errorf("Open = %v; want ErrPolicyAhead", err)
			}
		})
	}
}

func mustMarshal(t *testing.T, sp *policy.Signed) []byte {
	t.Helper()
	b, err := sp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inEnv is sp's policy for another environment, signed by keys.
func inEnv(t *testing.T, sp *policy.Signed, env string, keys ...*ecdsa.PrivateKey) *policy.Signed {
	t.Helper()
	out, err := policy.NewSigned(bytes.Replace(sp.Payload, []byte("environment: prod"), []byte("environment: "+env), 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := out.Sign(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
