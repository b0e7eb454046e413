package store_test

import (
	"context"
	"testing"

	"github.com/custody-dev/custody/internal/state/statetest"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestPGState runs the state conformance test on PostgreSQL, where the
// replicas of custody serve keep their state.
func TestPGState(t *testing.T) {
	pg := storetest.OpenPostgres(t)
	defer pg.Close()
	st, err := pg.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	statetest.Run(t, st)
}
