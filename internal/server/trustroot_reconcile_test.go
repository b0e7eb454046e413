package server_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/trust"
)

// TestTrustRootCrashBetweenAuditAndFile: a trust root change writes its
// trust.changed audit entry, then DIR/trust-root/N.json. A crash between
// them must not leave the server deciding with the version before, whose
// admins the logged version revoked.
func TestTrustRootCrashBetweenAuditAndFile(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers")
	}
	ctx := context.Background()
	dir := t.TempDir()
	root, raw, admins := governedRoot(t)
	first, stop := reopen(t, dir, raw)
	// Version 2: new admins; v1's are revoked.
	nextRoot := func(newAdmins ...*ecdsa.PrivateKey) *trust.Document {
		b, _ := root.Marshal()
		d, err := trust.ParseDocument(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range newAdmins {
			if err := d.AddKey(trust.Key{PublicKey: k.Public(), Role: trust.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range admins {
			id, _ := trust.KeyID(k.Public())
			if err := d.RevokeKey(id, time.Now().Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		signRoot(t, d, newAdmins...)
		signRoot(t, d, admins[:2]...)
		return d
	}
	newAdmins := []*ecdsa.PrivateKey{newKey(t), newKey(t)}
	if _, _, err := newClient(t, first, api.RoleAdmin).PushTrustRoot(ctx, nextRoot(newAdmins...), "alice"); err != nil {
		t.Fatal(err)
	}
	stop()

	// The crash took 2.json: the restart writes it from the audit entry.
	v2file := filepath.Join(dir, "trust-root", "2.json")
	if err := os.Remove(v2file); err != nil {
		t.Fatal(err)
	}
	ts, stop := reopen(t, dir, nil)
	if d := ts.TrustRootDocument(); d == nil || d.Version != 2 {
		t.Errorf("trust root after restart = %v; want version 2", d)
	}
	_, err := newClient(t, ts, api.RoleAdmin).PushPolicy(ctx, signedPolicy(t, "1", admins[0], admins[1]), "mallory")
	wantStatus(t, "policy signed by the admins version 2 revoked", err, http.StatusForbidden)
	stop()

	// Another version 2 in its place: a fork, the server does not start.
	other := nextRoot(newKey(t), newKey(t))
	b, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(ctx, server.Config{Dir: dir, BatchMaxAge: 5 * time.Millisecond})
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, trust.ErrFork) {
		t.Errorf("Open with another version 2 stored = %v; want ErrFork", err)
	}
}
