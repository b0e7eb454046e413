package incident_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/incident/ledgertest"
	"github.com/custody-dev/custody/internal/server/servertest"
)

// TestLedgerConformance runs the Ledger suite against a local directory and
// a custody server on each index backend (servertest.Backends).
func TestLedgerConformance(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		ledgertest.Run(t, func(t *testing.T) incident.Ledger { return incident.FileLedger{Dir: t.TempDir()} })
	})
	for _, b := range servertest.Backends() {
		t.Run("server-"+b.Name, func(t *testing.T) {
			ledgertest.Run(t, func(t *testing.T) incident.Ledger {
				s := servertest.Start(t, b.Open(t))
				return incident.ServerLedger{Client: s.Client(t, api.RoleAdmin)}
			})
		})
	}
}
