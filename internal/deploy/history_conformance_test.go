package deploy_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/deploy/historytest"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/server/servertest"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestHistoryConformance runs the History suite against a local directory
// and a custody server on each index backend (PostgreSQL when
// CUSTODY_TEST_POSTGRES is set, see scripts/postgres).
func TestHistoryConformance(t *testing.T) {
	onServer := func(index func(t *testing.T) server.Index) func(t *testing.T) deploy.History {
		return func(t *testing.T) deploy.History {
			s := servertest.Start(t, index(t))
			return deploy.ServerHistory{Client: s.Client(t, server.RoleDeployer)}
		}
	}
	for _, b := range []struct {
		name string
		open func(t *testing.T) deploy.History
	}{
		{"file", func(t *testing.T) deploy.History { return deploy.FileHistory{Dir: t.TempDir()} }},
		{"server-sqlite", onServer(func(*testing.T) server.Index { return nil })},
		{"server-memory", onServer(func(*testing.T) server.Index { return new(store.Memory) })},
		{"server-postgres", onServer(func(t *testing.T) server.Index {
			pg := storetest.OpenPostgres(t)
			t.Cleanup(func() { pg.Close() })
			return pg
		})},
	} {
		t.Run(b.name, func(t *testing.T) { historytest.Run(t, b.open) })
	}
}
