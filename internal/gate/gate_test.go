package gate

import (
	"context"
	"crypto"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
)

var digest = "sha256:" + strings.Repeat("ab", 32)

func newKey(t *testing.T) (crypto.Signer, string) {
	t.Helper()
	k, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func sign(t *testing.T, k crypto.Signer, pt string, pred any) []byte {
	t.Helper()
	sub := attest.Subject{Name: "app", Digest: map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}
	st, err := attest.NewStatement([]attest.Subject{sub}, pt, pred)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := signer.SignStatement(context.Background(), k, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func provenance() attest.ProvenanceV1 {
	start := time.Now().Add(-time.Minute).UTC()
	return attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody, ExternalParameters: attest.CustodyExternalParameters{
			Command: []string{"make"}, Source: attest.CustodySource{URI: "git+https://github.com/org/app", Ref: "refs/tags/v1", Commit: strings.Repeat("1", 40)},
		}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/local@v1"}, Metadata: &attest.BuildMetadata{InvocationID: "b1", StartedOn: &start, FinishedOn: &start}},
	}
}

func TestGather(t *testing.T) {
	builder, builderID := newKey(t)
	alice, aliceID := newKey(t)
	stranger, strangerID := newKey(t)
	tm, err := KeyMaterial(builder.Public(), alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	appr, err := attest.NewApproval(attest.ApprovalPredicate{Environment: "prod", Artifact: digest, Approver: "alice", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	apprBundle := sign(t, alice, attest.PredicateApproval, json.RawMessage(appr.Predicate))
	sbom := sign(t, alice, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX"})
	scan := sign(t, builder, attest.PredicateVulnsV02, map[string]any{"scanner": map[string]any{"uri": "grype", "result": []any{
		map[string]any{"id": "CVE-1", "severity": []any{map[string]any{"method": "nvd", "score": "9.8"}}},
	}}})
	badApproval := sign(t, alice, attest.PredicateApproval, map[string]any{"environment": "prod"})
	untrusted := sign(t, stranger, attest.PredicateSLSAv1, provenance())
	tampered := tamper(t, prov)

	ev, rej, err := Gather(context.Background(), digest, [][]byte{prov, apprBundle, sbom, scan, badApproval, untrusted, tampered, prov, []byte("{")}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Provenance) != 1 || ev.Provenance[0].Signer.KeyID != builderID || ev.Provenance[0].Facts.SourceRef != "refs/tags/v1" {
		t.Errorf("provenance %+v", ev.Provenance)
	}
	if len(ev.Approvals) != 1 || ev.Approvals[0].Signer.KeyID != aliceID || ev.Approvals[0].Approver != "alice" {
		t.Errorf("approvals %+v", ev.Approvals)
	}
	if len(ev.Attestations) != 1 || ev.Attestations[0].PredicateType != attest.PredicateCycloneDX {
		t.Errorf("attestations %+v", ev.Attestations)
	}
	if len(ev.VulnScans) != 1 || ev.VulnScans[0].Findings[0].Severity != policy.SeverityCritical {
		t.Errorf("scans %+v", ev.VulnScans)
	}
	if ev.Provenance[0].LogVerified || ev.Provenance[0].TimestampVerified {
		t.Error("a bare key-signed bundle claims a log entry or timestamp")
	}
	// A key none of the trusted keys matches is named as the cause (not
	// sigstore-go's "signature time outside of public key validity window").
	wantRej := map[int]string{4: "approval has no approver",
		5: "does not verify: signed by key ID " + strangerID + ", which is not among the trusted keys",
		6: "does not verify", 8: "not a Sigstore bundle"}
	if len(rej) != len(wantRej) {
		t.Fatalf("rejected %+v", rej)
	}
	for _, r := range rej {
		if !strings.Contains(r.Reason, wantRej[r.Index]) {
			t.Errorf("bundle %d rejected for %q, want %q", r.Index, r.Reason, wantRej[r.Index])
		}
		if r.Index == 6 && strings.Contains(r.Reason, "not among the trusted keys") {
			t.Errorf("tampered bundle of a trusted key rejected for %q", r.Reason)
		}
	}
	// Through a collection, as the CLI combines keys with a trusted root.
	_, rej, err = Gather(context.Background(), digest, [][]byte{untrusted}, root.TrustedMaterialCollection{tm})
	if err != nil || len(rej) != 1 || !strings.Contains(rej[0].Reason, "key ID "+strangerID+", which is not among the trusted keys") {
		t.Errorf("untrusted key through a collection: %v %+v", err, rej)
	}
}

func TestGatherWrongArtifact(t *testing.T) {
	builder, _ := newKey(t)
	tm, _ := KeyMaterial(builder.Public())
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	ev, rej, err := Gather(context.Background(), "sha256:"+strings.Repeat("0", 64), [][]byte{prov}, tm)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Provenance) != 0 || len(rej) != 1 || !strings.Contains(rej[0].Reason, "subject") {
		t.Fatalf("evidence about another artifact was accepted: %+v %+v", ev, rej)
	}
	if _, _, err := Gather(context.Background(), "sha256:XY", nil, tm); err == nil {
		t.Error("malformed digest accepted")
	}
}

func TestKeyMaterialByHint(t *testing.T) {
	a, _ := newKey(t)
	b, bID := newKey(t)
	tm, err := KeyMaterial(a.Public(), b.Public())
	if err != nil {
		t.Fatal(err)
	}
	// Through a collection, as the CLI combines it with a trusted root.
	coll := root.TrustedMaterialCollection{tm}
	prov := sign(t, b, attest.PredicateSLSAv1, provenance())
	ev, rej, err := Gather(context.Background(), digest, [][]byte{prov}, coll)
	if err != nil || len(rej) != 0 || len(ev.Provenance) != 1 || ev.Provenance[0].Signer.KeyID != bID {
		t.Fatalf("second key: %v %+v %+v", err, rej, ev)
	}
	if _, err := tm.PublicKeyVerifier("nope"); err == nil {
		t.Error("unknown hint answered")
	}
}

func TestCandidates(t *testing.T) {
	k, _ := newKey(t)
	prov := sign(t, k, attest.PredicateSLSAv1, provenance())
	sbom := sign(t, k, attest.PredicateCycloneDX, map[string]any{})
	got := Candidates([]Bundle{{JSON: prov}, {JSON: sbom}, {JSON: []byte("x")}})
	if len(got) != 1 || got[0] != digest {
		t.Fatalf("candidates %v", got)
	}
}

// tamper flips one character of the DSSE signature.
func tamper(t *testing.T, b []byte) []byte {
	t.Helper()
	s := string(b)
	i := strings.Index(s, `"sig":"`)
	if i < 0 {
		t.Fatalf("no signature in %s", s)
	}
	i += len(`"sig":"`) + 10
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return []byte(s[:i] + string(c) + s[i+1:])
}
