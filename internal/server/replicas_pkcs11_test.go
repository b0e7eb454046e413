//go:build linux && cgo

package server_test

import (
	"context"
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
)

// TestReplicasShareHSMKeys runs two replicas whose log, TSA, audit and
// builder keys are the same keys of one PKCS#11 token (SoftHSM2, as a
// shared HSM): no key file on either disk, writes through both, every
// checkpoint either serves signed by the token's log key and consistent
// with the one before, and both serve exactly what the log records.
func TestReplicasShareHSMKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	uris := map[string]string{}
	for _, name := range []string{"log", "tsa", "audit", "builder"} {
		uris[name] = tokenKey(t, "replicas-"+name)
	}
	rr := newReplicaRig(t, 2)
	lk, err := signer.LoadPKCS11(uris["log"])
	if err != nil {
		t.Fatal(err)
	}
	rr.logPub = lk.Public().(*ecdsa.PublicKey)
	lk.Close()
	for _, r := range rr.rigs {
		if err := os.RemoveAll(filepath.Join(r.dir, "keys")); err != nil {
			t.Fatal(err)
		}
		r.extra = append(r.extra, "--log-key", uris["log"], "--tsa-key", uris["tsa"], "--audit-key", uris["audit"],
			"--builder-key", "builder="+uris["builder"])
	}
	// One after the other: SoftHSM2's file store can miss its token when
	// two processes open it at the same moment ("no token matches"); an
	// HSM serves its clients at once.
	for _, r := range rr.rigs {
		r.start("")
	}
	ctx := context.Background()
	var last *tlog.Checkpoint
	for i, kind := range []string{"sign", "decide", "deployment", "sign"} {
		r := rr.rigs[i%2]
		if err := r.write(ctx, kind); err != nil {
			t.Fatalf("%s through replica %d: %v", kind, i%2, err)
		}
		c, err := tlog.NewClient(r.url, "127.0.0.1", rr.logPub, nil)
		if err != nil {
			t.Fatal(err)
		}
		if last, err = c.Update(ctx, last); err != nil {
			t.Fatalf("checkpoint of replica %d with the token's log key: %v", i%2, err)
		}
	}
	rr.check(ctx, "writes through two replicas with keys in one token")
	for _, r := range rr.rigs {
		r.stop()
	}
	rr.noStateOnDisk()
}
