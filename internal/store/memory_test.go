package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestMemoryFaults checks the fault hooks: a fault before a write stores
// nothing, one after it stores the write yet fails the call, and a reopened
// index keeps every stored record without the hook.
func TestMemoryFaults(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("injected")
	m := new(store.Memory)
	var seen []string
	m.SetFault(func(op string, after bool) error {
		seen = append(seen, op)
		if op == store.OpPut && !after {
			return boom
		}
		if op == store.OpAppendDeployment && after {
			return boom
		}
		return nil
	})
	if _, _, err := m.Put(ctx, storetest.Evidence(1)); !errors.Is(err, boom) {
		t.Fatalf("Put with a fault before it: %v, want the injected error", err)
	}
	if n, _ := m.Count(ctx); n != 0 {
		t.Errorf("a Put failed before the write stored %d records", n)
	}
	d := &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: "sha256:" + storetest.Digest("a"),
		Actor: "ci", Time: time.Now()}
	if _, err := m.AppendDeployment(ctx, d); !errors.Is(err, boom) {
		t.Fatalf("AppendDeployment with a fault after it: %v, want the injected error", err)
	}
	if got, err := m.Deployments(ctx, store.DeploymentQuery{}); err != nil || len(got) != 1 {
		t.Errorf("a fault after the write: %d deployments (%v), want the write stored", len(got), err)
	}
	if want := []string{store.OpPut, store.OpAppendDeployment, store.OpAppendDeployment}; !slices.Equal(seen, want) {
		t.Errorf("hook saw %v, want %v", seen, want)
	}
	m.Close()
	if _, err := m.Count(ctx); err == nil {
		t.Error("Count on a closed index succeeded")
	}
	r := m.Reopen()
	if _, _, err := r.Put(ctx, storetest.Evidence(1)); err != nil {
		t.Fatalf("Put after Reopen: %v (the hook should be gone)", err)
	}
	if got, err := r.Deployments(ctx, store.DeploymentQuery{}); err != nil || len(got) != 1 {
		t.Errorf("reopened index has %d deployments (%v), want 1", len(got), err)
	}
}
