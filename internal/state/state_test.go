package state_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/state/statetest"
)

func TestDir(t *testing.T) { statetest.Run(t, state.Dir(t.TempDir())) }
