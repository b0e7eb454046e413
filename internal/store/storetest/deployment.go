package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// Deployment returns a valid deployment record number n in env.
func Deployment(env string, n int, event string) *store.Deployment {
	return &store.Deployment{
		Environment:  env,
		Event:        event,
		Artifact:     "sha256:" + Digest(fmt.Sprint(n)),
		Name:         fmt.Sprintf("app-%d", n),
		Actor:        "alice",
		Time:         time.Date(2026, 3, 1, 12, 0, n, 123456789, time.FixedZone("X", 3600)),
		PolicyDigest: "sha256:" + Digest("policy"),
		Decision:     "allowed",
	}
}

func testDeploymentsRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	in := Deployment("prod", 1, store.EventRolledBack)
	in.RollbackFrom = "sha256:" + Digest("2")
	in.Detail = "health check failed: exit status 1"
	in.DecisionBundle = Digest("vsa")
	in.RecordedBy = "deployer-token"
	in.ID, in.RecordedAt = 99, time.Unix(5, 0)
	before := time.Now().Add(-time.Second)
	id, err := s.AppendDeployment(ctx, in)
	if err != nil {
		t.Fatalf("AppendDeployment: %v", err)
	}
	if in.ID != 99 {
		t.Errorf("AppendDeployment modified its argument")
	}
	got, err := s.Deployments(ctx, store.DeploymentQuery{Environment: "prod"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Deployments = %d records, %v; want 1", len(got), err)
	}
	d := got[0]
	if d.ID != id {
		t.Errorf("ID = %d, want %d", d.ID, id)
	}
	if !d.Time.Equal(in.Time.Truncate(time.Microsecond)) || d.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", d.Time, in.Time.Truncate(time.Microsecond))
	}
	if d.RecordedAt.Before(before.Truncate(time.Microsecond)) || d.RecordedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("RecordedAt = %v, not the time of the append", d.RecordedAt)
	}
	want := *in
	want.ID, want.Time, want.RecordedAt = d.ID, d.Time, d.RecordedAt
	if *d != want {
		t.Errorf("round trip:\n got %+v\nwant %+v", *d, want)
	}
}

func testDeploymentsQuery(t *testing.T, s Store) {
	ctx := context.Background()
	var prod []int64
	for i := range 7 {
		env := "prod"
		if i%2 == 1 {
			env = "staging"
		}
		id, err := s.AppendDeployment(ctx, Deployment(env, i, store.EventDeployed))
		if err != nil {
			t.Fatalf("AppendDeployment: %v", err)
		}
		if env == "prod" {
			prod = append(prod, id)
		}
	}
	all, err := s.Deployments(ctx, store.DeploymentQuery{})
	if err != nil || len(all) != 7 {
		t.Fatalf("Deployments(all) = %d, %v; want 7", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Errorf("records not in ID order: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	var paged []int64
	after := int64(0)
	for {
		page, err := s.Deployments(ctx, store.DeploymentQuery{Environment: "prod", AfterID: after, Limit: 3})
		if err != nil {
			t.Fatalf("Deployments page: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			if d.Environment != "prod" {
				t.Errorf("record of %s in a prod query", d.Environment)
			}
			paged = append(paged, d.ID)
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(paged) != fmt.Sprint(prod) {
		t.Errorf("paged prod IDs = %v, want %v", paged, prod)
	}
	if n, err := s.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count = %d, %v: deployments must not count as evidence", n, err)
	}
	for _, q := range []store.DeploymentQuery{{Limit: -1}, {AfterID: -1}, {Environment: "no/such env"}} {
		if _, err := s.Deployments(ctx, q); !errors.Is(err, store.ErrInvalidQuery) {
			t.Errorf("Deployments(%+v) = %v, want ErrInvalidQuery", q, err)
		}
	}
}

func testDeploymentsInvalid(t *testing.T, s Store) {
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(d *store.Deployment)
	}{
		{"environment", func(d *store.Deployment) { d.Environment = "" }},
		{"environment path", func(d *store.Deployment) { d.Environment = "../prod" }},
		{"event", func(d *store.Deployment) { d.Event = "exploded" }},
		{"artifact", func(d *store.Deployment) { d.Artifact = "sha256:ABC" }},
		{"artifact alg", func(d *store.Deployment) { d.Artifact = "md5:" + Digest("x")[:32] }},
		{"rollback from", func(d *store.Deployment) { d.RollbackFrom = "nope" }},
		{"policy digest", func(d *store.Deployment) { d.PolicyDigest = "sha256:" }},
		{"decision", func(d *store.Deployment) { d.Decision = "maybe" }},
		{"decision bundle", func(d *store.Deployment) { d.DecisionBundle = "xyz" }},
		{"time", func(d *store.Deployment) { d.Time = time.Time{} }},
		{"detail", func(d *store.Deployment) { d.Detail = strings.Repeat("x", store.MaxFieldLen+1) }},
		{"actor NUL", func(d *store.Deployment) { d.Actor = "a\x00b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Deployment("prod", 1, store.EventDeployed)
			tt.edit(d)
			if _, err := s.AppendDeployment(ctx, d); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AppendDeployment = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.AppendDeployment(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AppendDeployment(nil) = %v, want ErrInvalid", err)
	}
	if got, err := s.Deployments(ctx, store.DeploymentQuery{}); err != nil || len(got) != 0 {
		t.Errorf("Deployments after invalid appends = %d, %v; want none", len(got), err)
	}
}

func testDeploymentsCanceled(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AppendDeployment(ctx, Deployment("prod", 1, store.EventDeployed)); err == nil {
		t.Errorf("AppendDeployment with a canceled context succeeded")
	}
	if got, err := s.Deployments(context.Background(), store.DeploymentQuery{}); err != nil || len(got) != 0 {
		t.Errorf("Deployments = %d, %v after a canceled append; want none", len(got), err)
	}
}
