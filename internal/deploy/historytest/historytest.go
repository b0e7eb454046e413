// Package historytest is the conformance suite every deploy.History backend
// (deploy.FileHistory, deploy.ServerHistory on each index backend) must
// pass. A backend's test calls [Run] with a function that opens a new,
// empty history.
package historytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// Run runs the suite; open returns a new, empty history each time.
func Run(t *testing.T, open func(t *testing.T) deploy.History) {
	for _, tt := range []struct {
		name string
		f    func(t *testing.T, h deploy.History)
	}{
		{"RoundTrip", testRoundTrip},
		{"Order", testOrder},
		{"Environments", testEnvironments},
		{"Invalid", testInvalid},
		{"Canceled", testCanceled},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, open(t)) })
	}
}

func list(t *testing.T, h deploy.History, env string) []*deploy.Record {
	t.Helper()
	rs, err := h.List(context.Background(), env)
	if err != nil {
		t.Fatalf("List(%q): %v", env, err)
	}
	return rs
}

// same reports whether got is want as stored: every field the client
// gives, normalised (ID, RecordedAt and RecordedBy are the backend's).
func same(got, want *deploy.Record) bool {
	g, w := *got, *want
	if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC || g.Time.Nanosecond()%1000 != 0 {
		return false
	}
	g.ID, g.RecordedAt, g.RecordedBy, g.Time = 0, time.Time{}, "", time.Time{}
	w.ID, w.RecordedAt, w.RecordedBy, w.Time = 0, time.Time{}, "", time.Time{}
	return g == w
}

func testRoundTrip(t *testing.T, h deploy.History) {
	in := storetest.Deployment("prod", 1, deploy.EventRolledBack)
	in.RollbackFrom = "sha256:" + storetest.Digest("2")
	in.Detail = "health check failed: exit status 1"
	in.DecisionBundle = storetest.Digest("vsa")
	in.ID = 99
	copyIn := *in
	before := time.Now().Add(-time.Minute)
	got, err := h.Append(context.Background(), in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if *in != copyIn {
		t.Error("Append modified its argument")
	}
	if got.ID <= 0 || got.ID == 99 {
		t.Errorf("Append returned ID %d, want one the backend assigned", got.ID)
	}
	in.Time = in.Time.UTC().Truncate(time.Microsecond) // as stored
	if !same(got, in) {
		t.Errorf("Append returned %+v, want %+v as stored", got, in)
	}
	rs := list(t, h, "prod")
	if len(rs) != 1 || !same(rs[0], in) || rs[0].ID != got.ID {
		t.Fatalf("List = %+v, want the appended record with ID %d", rs, got.ID)
	}
	if rs[0].RecordedAt.Before(before) || rs[0].RecordedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("RecordedAt = %v, want about now", rs[0].RecordedAt)
	}
}

// testOrder appends records out of time order: List returns them in append
// order, with increasing IDs.
func testOrder(t *testing.T, h deploy.History) {
	ctx := context.Background()
	events := []string{deploy.EventDeployed, deploy.EventHealthy, deploy.EventDeployed, deploy.EventFailed, deploy.EventRolledBack}
	var want []*deploy.Record
	for i, ev := range events {
		r := storetest.Deployment("staging", 10+i, ev)
		if _, err := h.Append(ctx, r); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		r.Time = r.Time.UTC().Truncate(time.Microsecond)
		want = append(want, r)
	}
	rs := list(t, h, "staging")
	if len(rs) != len(want) {
		t.Fatalf("List returned %d records, want %d", len(rs), len(want))
	}
	for i := range rs {
		if !same(rs[i], want[i]) {
			t.Errorf("record %d = %+v, want %+v", i, rs[i], want[i])
		}
		if i > 0 && rs[i].ID <= rs[i-1].ID {
			t.Errorf("IDs do not increase: %d after %d", rs[i].ID, rs[i-1].ID)
		}
	}
}

// testEnvironments: List(env) returns env's records only, List("") every
// environment's (in time order, which here is append order).
func testEnvironments(t *testing.T, h deploy.History) {
	ctx := context.Background()
	envs := []string{"prod", "staging", "prod", "dev.eu-1", "staging"}
	for i, env := range envs {
		if _, err := h.Append(ctx, storetest.Deployment(env, i, deploy.EventDeployed)); err != nil {
			t.Fatalf("Append to %s: %v", env, err)
		}
	}
	counts := map[string]int{}
	for _, e := range envs {
		counts[e]++
	}
	for env, n := range counts {
		rs := list(t, h, env)
		if len(rs) != n {
			t.Errorf("List(%q) = %d records, want %d", env, len(rs), n)
		}
		for _, r := range rs {
			if r.Environment != env {
				t.Errorf("List(%q) returned a record of %q", env, r.Environment)
			}
		}
	}
	if rs := list(t, h, "qa"); len(rs) != 0 {
		t.Errorf("List of an environment never deployed to = %d records, want none", len(rs))
	}
	all := list(t, h, "")
	if len(all) != len(envs) {
		t.Fatalf("List(\"\") = %d records, want %d", len(all), len(envs))
	}
	for i, r := range all {
		if r.Environment != envs[i] || r.Name != storetest.Deployment(envs[i], i, "").Name {
			t.Errorf("List(\"\")[%d] = %s %s, want %s %s", i, r.Environment, r.Name, envs[i], storetest.Deployment(envs[i], i, "").Name)
		}
	}
}

// testInvalid: a malformed record is refused with store.ErrInvalid and
// nothing is appended.
func testInvalid(t *testing.T, h deploy.History) {
	ctx := context.Background()
	bad := map[string]func(r *deploy.Record){
		"environment": func(r *deploy.Record) { r.Environment = "../prod" },
		"event":       func(r *deploy.Record) { r.Event = "exploded" },
		"artifact":    func(r *deploy.Record) { r.Artifact = "sha256:ABC" },
		"time":        func(r *deploy.Record) { r.Time = time.Time{} },
		"decision":    func(r *deploy.Record) { r.Decision = "maybe" },
		"detail":      func(r *deploy.Record) { r.Detail = "a\x00b" },
	}
	for name, spoil := range bad {
		r := storetest.Deployment("prod", 1, deploy.EventDeployed)
		spoil(r)
		if _, err := h.Append(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Append with a bad %s: %v, want store.ErrInvalid", name, err)
		}
	}
	if rs := list(t, h, ""); len(rs) != 0 {
		t.Errorf("refused records were appended: %+v", rs)
	}
}

// testCanceled: an append with a canceled context fails and appends
// nothing.
func testCanceled(t *testing.T, h deploy.History) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Append(ctx, storetest.Deployment("prod", 1, deploy.EventDeployed)); err == nil {
		t.Error("Append with a canceled context succeeded")
	}
	if rs := list(t, h, "prod"); len(rs) != 0 {
		t.Errorf("a canceled append was stored: %+v", rs)
	}
}
