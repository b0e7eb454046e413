package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/signer"
)

func TestDeployments(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	dep := newClient(t, ts, api.RoleDeployer)
	aud := newClient(t, ts, api.RoleAuditor)
	sum := sha256.Sum256([]byte("app"))
	d := &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: "sha256:" + hex.EncodeToString(sum[:]),
		Name: "app", Actor: "ci", Time: time.Now(), RecordedBy: "forged"}
	id, err := dep.AppendDeployment(ctx, d)
	if err != nil {
		t.Fatalf("AppendDeployment: %v", err)
	}
	d.Environment = "staging"
	if _, err := dep.AppendDeployment(ctx, d); err != nil {
		t.Fatalf("AppendDeployment: %v", err)
	}
	got, err := aud.Deployments(ctx, "prod")
	if err != nil || len(got) != 1 {
		t.Fatalf("Deployments = %d, %v; want 1", len(got), err)
	}
	if got[0].ID != id || got[0].RecordedBy != "deployer:test deployer" || got[0].Actor != "ci" {
		t.Errorf("record = %+v; want id %d recorded by the deployer token, not what the client claimed", got[0], id)
	}
	if all, err := aud.Deployments(ctx, ""); err != nil || len(all) != 2 {
		t.Errorf("Deployments(all) = %d, %v; want 2", len(all), err)
	}
	// Each append wrote an audit entry first: in the log, signed with the
	// audit key, naming the token and the artifact.
	audits, err := aud.Search(ctx, api.Query{PredicateType: api.PredicateAudit})
	if err != nil || len(audits) != 2 {
		t.Fatalf("audit entries = %d, %v; want 2", len(audits), err)
	}
	if rest, err := aud.Search(ctx, api.Query{Digest: d.Artifact, ExcludePredicateTypes: []string{api.PredicateAudit}}); err != nil || len(rest) != 0 {
		t.Errorf("evidence about the artifact without audit entries = %d, %v; want none", len(rest), err)
	}
	auditPub, err := aud.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		t.Fatalf("audit key: %v", err)
	}
	pub, err := signer.ParsePublicKey(auditPub)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range audits {
		if e.SignerKeyID != signer.KeyID(pub) || e.LogIndex < 0 || e.Subjects[0].Digest["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("audit entry %+v: want signed by the audit key, logged, about the artifact", e)
		}
		st, err := attest.ParseStatement(dssePayload(t, e.Bundle))
		if err != nil {
			t.Fatal(err)
		}
		var p api.AuditPredicate
		if err := json.Unmarshal(st.Predicate, &p); err != nil || p.Action != "deployment.deployed" || p.Token != "deployer:test deployer" || p.Actor != "ci" {
			t.Errorf("audit predicate = %+v, %v", p, err)
		}
	}
	var apiErr *client.APIError
	if _, err := aud.AppendDeployment(ctx, d); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("auditor AppendDeployment = %v, want 403", err)
	}
	d.Event = "exploded"
	if _, err := dep.AppendDeployment(ctx, d); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Errorf("malformed AppendDeployment = %v, want 400", err)
	}
}

// TestPushByRole: approvers push only approvals, deployers only decisions.
func TestPushByRole(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	key, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("app"))
	bundleOf := func(predicateType string, pred any) []byte {
		st, err := attest.NewStatement([]attest.Subject{{Name: "app", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}}, predicateType, pred)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := signer.SignStatement(ctx, key, b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	approval := bundleOf("https://custody.dev/approval/v1", map[string]any{"environment": "prod", "artifact": "sha256:" + hex.EncodeToString(sum[:]),
		"approver": "alice", "time": "2026-01-01T00:00:00Z"})
	vsa := bundleOf("https://slsa.dev/verification_summary/v1", map[string]any{"verificationResult": "PASSED"})
	for _, tt := range []struct {
		role   api.Role
		bundle []byte
		ok     bool
	}{
		{api.RoleApprover, approval, true},
		{api.RoleApprover, vsa, false},
		{api.RoleDeployer, vsa, true},
		{api.RoleDeployer, approval, false},
		{api.RoleAuditor, approval, false},
	} {
		_, _, err := newClient(t, ts, tt.role).Push(ctx, tt.bundle)
		var apiErr *client.APIError
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s push: %v", tt.role, err)
		case !tt.ok && (!errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden):
			t.Errorf("%s push = %v, want 403", tt.role, err)
		}
	}
	// A deployer has decisions signed, and nothing else.
	dep := newClient(t, ts, api.RoleDeployer)
	st, _ := attest.NewStatement([]attest.Subject{{Name: "app", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		"https://slsa.dev/verification_summary/v1", map[string]any{"verificationResult": "PASSED"})
	b, _ := st.Marshal()
	if _, err := dep.Sign(ctx, b); err != nil {
		t.Errorf("deployer Sign(VSA): %v", err)
	}
	// ... with the audit key, not a builder key: a compromised builder key
	// must not taint every deployment decision.
	auditPEM, err := dep.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		t.Fatal(err)
	}
	auditPub, err := signer.ParsePublicKey(auditPEM)
	if err != nil {
		t.Fatal(err)
	}
	if vsas, err := dep.Search(ctx, api.Query{PredicateType: "https://slsa.dev/verification_summary/v1", SignerKeyID: signer.KeyID(auditPub)}); err != nil || len(vsas) != 1 {
		t.Errorf("VSAs signed with the audit key = %d, %v; want 1", len(vsas), err)
	}
	var apiErr *client.APIError
	if _, err := dep.Sign(ctx, statement(t, "dep-1", "app")); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("deployer Sign(provenance) = %v, want 403", err)
	}
}

// dssePayload returns the statement inside a DSSE bundle.
func dssePayload(t *testing.T, bundleJSON []byte) []byte {
	t.Helper()
	var b struct {
		DSSEEnvelope struct {
			Payload []byte `json:"payload"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(bundleJSON, &b); err != nil || len(b.DSSEEnvelope.Payload) == 0 {
		t.Fatalf("bundle has no DSSE payload: %v", err)
	}
	return b.DSSEEnvelope.Payload
}
