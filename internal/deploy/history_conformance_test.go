package deploy_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/deploy/historytest"
	"github.com/custody-dev/custody/internal/server/servertest"
)

// TestHistoryConformance runs the History suite against a local directory
// and a custody server on each index backend (servertest.Backends).
func TestHistoryConformance(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		historytest.Run(t, func(t *testing.T) deploy.History { return deploy.FileHistory{Dir: t.TempDir()} })
	})
	for _, b := range servertest.Backends() {
		t.Run("server-"+b.Name, func(t *testing.T) {
			historytest.Run(t, func(t *testing.T) deploy.History {
				s := servertest.Start(t, b.Open(t))
				return deploy.ServerHistory{Client: s.Client(t, api.RoleDeployer)}
			})
		})
	}
}
