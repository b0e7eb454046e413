package server_test

import (
	"context"
	"crypto"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/signer"
)

// A bundle signed offline by a key the server trusts gets, when pushed, a
// timestamp and an entry in the server's log: the audit trail verifies it
// (it used to fail "not in the server's transparency log" for good).
// Pushing the same bundle again finds the record. A bundle of a key the
// server does not trust is stored unverified and shown as pushed.
func TestPushedBundleIsLogged(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("test password")
	ciKey, _, err := signer.WriteKeyPair(dir+"/ci", signer.ECDSAP256, pw, false)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, server.Config{Password: pw, BuilderKeys: map[string]string{"ci": ciKey}})
	ctx := context.Background()
	c := newClient(t, ts, api.RoleBuilder)
	key, err := signer.Load(ciKey, func() ([]byte, error) { return pw, nil })
	if err != nil {
		t.Fatal(err)
	}
	offline, err := signer.SignStatement(ctx, key, statement(t, "build-offline", "offline.bin"))
	if err != nil {
		t.Fatal(err)
	}
	id, existed, err := c.Push(ctx, offline)
	if err != nil || existed {
		t.Fatalf("push = %d, existed %v, %v", id, existed, err)
	}
	e, err := ts.Index().Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if e.LogIndex < 0 || e.IntegratedTime.IsZero() || e.SignerKeyID != signer.KeyID(key.Public()) {
		t.Errorf("indexed at log index %d, time %v, signer %q; want logged, timestamped, signed by ci", e.LogIndex, e.IntegratedTime, e.SignerKeyID)
	}
	if size := logSize(t, ts); size != 1 {
		t.Errorf("log size %d, want 1", size)
	}
	again, existed, err := c.Push(ctx, offline)
	if err != nil || !existed || again != id {
		t.Errorf("push again = %d, existed %v, %v; want %d, true", again, existed, err, id)
	}
	if size := logSize(t, ts); size != 1 {
		t.Errorf("log size %d after pushing again, want 1", size)
	}

	stranger, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := signer.SignStatement(ctx, stranger, statement(t, "build-stranger", "stranger.bin"))
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], unknown)
	if resp.status != http.StatusCreated {
		t.Fatalf("push by an untrusted key: %d %s", resp.status, resp.body)
	}
	var pr struct{ ID int64 }
	json.Unmarshal([]byte(resp.body), &pr)

	auditPub := ts.AuditPublicKey()
	trail, err := newClient(t, ts, api.RoleAuditor).AuditTrail(ctx, client.AuditQuery{}, crypto.PublicKey(auditPub))
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for _, a := range trail {
		switch a.EvidenceID {
		case id:
			seen++
			if !a.Verified || a.Action != client.ActionSign || a.LogIndex != e.LogIndex {
				t.Errorf("pushed bundle in the trail: %+v; want a verified sign entry at log index %d", a, e.LogIndex)
			}
		case pr.ID:
			seen++
			if a.Verified || !a.Pushed {
				t.Errorf("untrusted pushed bundle in the trail: %+v; want shown as pushed, unverified", a)
			}
		}
	}
	if seen != 2 {
		t.Errorf("trail holds %d of the 2 pushed bundles: %+v", seen, trail)
	}
}

func logSize(t *testing.T, ts *testServer) uint64 {
	t.Helper()
	cp, err := ts.Log().Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}
