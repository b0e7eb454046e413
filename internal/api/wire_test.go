package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

var update = flag.Bool("update", false, "rewrite testdata/wire.golden")

// wireSamples are one full and one empty value of every wire type, named.
func wireSamples() []struct {
	name string
	v    any
} {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	t1 := t0.Add(time.Hour)
	ev := Evidence{ID: 7, BundleSHA256: "ab12", PredicateType: "https://slsa.dev/provenance/v1",
		Subjects:    []attest.Subject{{Name: "app", Digest: map[string]string{"sha256": "cd34"}}, {Digest: map[string]string{"gitCommit": "ef"}}},
		SignerKeyID: "5a", SignerIdentity: "ci@example.com", SignerIssuer: "https://issuer.example", BuilderID: "https://b",
		SourceURI: "git+https://src", SourceCommit: "c0ffee", BuildID: "build-1", LogIndex: 3, IntegratedTime: t0,
		IndexedAt: t1, Verified: true, Bundle: json.RawMessage(`{"mediaType":"x"}`)}
	unverified := Evidence{ID: 8, BundleSHA256: "ab13", Subjects: []attest.Subject{}, PredicateType: "p", LogIndex: -1,
		IndexedAt: t1, Bundle: json.RawMessage(`{}`)}
	tok := TokenStatus{ID: "0123456789ab", Name: "ci", Role: RoleBuilder, Key: DefaultBuilderKey, Created: t0,
		Expires: t1, Revoked: t1, LastUsed: t0}
	dep := Deployment{ID: 5, Environment: "prod", Event: "rolled-back", Artifact: "sha256:aa", Name: "app", Actor: "ci",
		Time: t0, PolicyDigest: "sha256:bb", Decision: "allowed", DecisionBundle: "cc", RollbackFrom: "sha256:dd",
		Detail: "health check failed", RecordedBy: "deployer:ci", RecordedAt: t1}
	inc := IncidentRecord{ID: 6, Incident: "INC-20260304T050607Z-0123abcd", Event: "quarantined", Artifact: "sha256:aa",
		Actor: "sec", Time: t0, Detail: "key leaked", RecordedBy: "admin", RecordedAt: t1}
	return []struct {
		name string
		v    any
	}{
		{"Evidence", ev},
		{"Evidence unverified", unverified},
		{"SearchResponse", SearchResponse{Evidence: []Evidence{ev, unverified}, Next: 8}},
		{"SearchResponse empty", SearchResponse{Evidence: []Evidence{}}},
		{"PushAnswer", PushAnswer{ID: 9, Existed: true}},
		{"PushAnswer new", PushAnswer{ID: 10}},
		{"SignRequest", SignRequest{Statement: json.RawMessage(`{"_type":"x"}`), Key: "k"}},
		{"SignRequest default key", SignRequest{Statement: json.RawMessage(`{}`)}},
		{"SignAnswer", SignAnswer{ID: 11, Bundle: json.RawMessage(`{}`)}},
		{"PackRequest", PackRequest{Artifact: "sha256:" + strings.Repeat("ab", 32), Environment: "prod", ValidForSeconds: 3600}},
		{"TokenStatus", tok},
		{"TokenStatus active", TokenStatus{ID: "0123456789ab", Name: "admin-1", Role: RoleAdmin, Created: t0}},
		{"TokenList", TokenList{Tokens: []TokenStatus{tok}, Skipped: []string{"line 3"}}},
		{"TokenList empty", TokenList{}},
		{"RevokeRequest", RevokeRequest{Name: "ci"}},
		{"AuditPredicate", AuditPredicate{Action: "policy.changed", Actor: "alice", Token: "admin:a", Time: t0, Detail: json.RawMessage(`{"a":1}`)}},
		{"AuditPredicate bare", AuditPredicate{Action: "token.revoked", Token: "admin", Time: t0}},
		{"PolicyChange", PolicyChange{Environment: "prod", Version: 2, Previous: 1, PreviousDigest: "sha256:aa", Digest: "sha256:bb",
			TrustRootVersion: 3, Admins: []string{"k1", "k2"}, Envelope: json.RawMessage(`{}`)}},
		{"PolicyChange first", PolicyChange{Environment: "prod", Version: 1, Digest: "sha256:bb", Envelope: json.RawMessage(`{}`)}},
		{"TrustChange", TrustChange{Version: 2, Previous: 1, Digest: "sha256:cc", Document: json.RawMessage(`{}`)}},
		{"PolicyPushAnswer", PolicyPushAnswer{Environment: "prod", Version: 2, Digest: "sha256:bb", Existed: true}},
		{"TrustPushAnswer", TrustPushAnswer{Version: 2}},
		{"Deployment", dep},
		{"Deployment minimal", Deployment{Environment: "prod", Event: "deployed", Artifact: "sha256:aa", Time: t0}},
		{"DeploymentPage", DeploymentPage{Deployments: []*Deployment{&dep}}},
		{"IncidentRecord", inc},
		{"IncidentRecord report", IncidentRecord{Incident: "INC-1", Event: "reported", Time: t0, Report: json.RawMessage(`{"id":"INC-1"}`)}},
		{"IncidentBatch", IncidentBatch{Records: []*IncidentRecord{&inc}}},
		{"IncidentPage", IncidentPage{Records: []*IncidentRecord{}}},
		{"IDAnswer", IDAnswer{ID: 12}},
		{"IDsAnswer", IDsAnswer{IDs: []int64{13, 14}}},
	}
}

// TestWireGolden pins the JSON of every wire type: a field renamed, a
// tag's omitempty changed or a type changed shows up here as a diff of
// testdata/wire.golden (regenerate with -update only for a new API
// version).
func TestWireGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, s := range wireSamples() {
		b, err := json.Marshal(s.v)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		fmt.Fprintf(&buf, "%s\n%s\n\n", s.name, b)
	}
	path := filepath.Join("testdata", "wire.golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("wire JSON changed; got:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
}

// TestWireRoundTrip decodes what it encoded: nothing is lost on the way
// from the server to a client.
func TestWireRoundTrip(t *testing.T) {
	for _, s := range wireSamples() {
		b, err := json.Marshal(s.v)
		if err != nil {
			t.Fatal(err)
		}
		p := newLike(s.v)
		if err := json.Unmarshal(b, p); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, again) {
			t.Errorf("%s: round trip changed\n%s\nto\n%s", s.name, b, again)
		}
	}
}

// newLike returns a pointer to a new zero value of v's type.
func newLike(v any) any {
	switch v.(type) {
	case Evidence:
		return new(Evidence)
	case SearchResponse:
		return new(SearchResponse)
	case PushAnswer:
		return new(PushAnswer)
	case SignRequest:
		return new(SignRequest)
	case SignAnswer:
		return new(SignAnswer)
	case PackRequest:
		return new(PackRequest)
	case TokenStatus:
		return new(TokenStatus)
	case TokenList:
		return new(TokenList)
	case RevokeRequest:
		return new(RevokeRequest)
	case AuditPredicate:
		return new(AuditPredicate)
	case PolicyChange:
		return new(PolicyChange)
	case TrustChange:
		return new(TrustChange)
	case PolicyPushAnswer:
		return new(PolicyPushAnswer)
	case TrustPushAnswer:
		return new(TrustPushAnswer)
	case Deployment:
		return new(Deployment)
	case DeploymentPage:
		return new(DeploymentPage)
	case IncidentRecord:
		return new(IncidentRecord)
	case IncidentBatch:
		return new(IncidentBatch)
	case IncidentPage:
		return new(IncidentPage)
	case IDAnswer:
		return new(IDAnswer)
	case IDsAnswer:
		return new(IDsAnswer)
	}
	panic(fmt.Sprintf("no sample type %T", v))
}
