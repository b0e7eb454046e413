package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
)

// TestReconcileRecordsSkipsForgedAuditRows: the start-up reconciliation
// appends deployment and incident records only from audit entries of this
// server (audit key, own log). Index rows of the audit type signed by
// another key (as a push could store before reserved types were refused)
// append nothing and are named in the log.
func TestReconcileRecordsSkipsForgedAuditRows(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers")
	}
	ctx := context.Background()
	dir := t.TempDir()
	var logs syncBuffer
	_, stop := openLogged(t, dir, nil, &logs)
	stop()
	attacker := newKey(t)
	sum := sha256.Sum256([]byte("backdoor"))
	art := "sha256:" + hex.EncodeToString(sum[:])
	sub := attest.Subject{Name: "backdoor", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}
	now := time.Now().UTC().Truncate(time.Second)
	rows := map[string][]byte{}
	_, rows["deployment"] = forgedAudit(t, attacker, api.PredicateAudit, "deployment.deployed", sub,
		store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: art, Time: now, RecordedBy: "deployer"})
	_, rows["incident"] = forgedAudit(t, attacker, api.PredicateAudit, "incident.opened", sub,
		[]store.IncidentRecord{{Incident: "INC-20260101T000000Z-0000abcd", Event: store.IncidentOpened, Time: now, RecordedBy: "admin"}})
	ids := putRows(t, dir, rows)

	ts, stop := openLogged(t, dir, nil, &logs)
	defer stop()
	if deps, err := ts.Index().Deployments(ctx, store.DeploymentQuery{}); err != nil || len(deps) != 0 {
		t.Errorf("deployments after the restart = %d, %v; want none from forged rows", len(deps), err)
	}
	if incs, err := ts.Index().Incidents(ctx, store.IncidentQuery{}); err != nil || len(incs) != 0 {
		t.Errorf("incident records after the restart = %d, %v; want none from forged rows", len(incs), err)
	}
	out := logs.String()
	for name, id := range ids {
		if !strings.Contains(out, fmt.Sprintf("id=%d ", id)) {
			t.Errorf("no warning names the forged %s row (id %d)", name, id)
		}
	}
}
