package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
)

// TestRedFlagsSignedByTheAuditKey: red flags statements verified by Gather
// count in a decision only when signed by the key the policy names in
// redFlags.signers (the server's audit key). One the builder signs is
// verified evidence, but a policy ignores it and, with no statement by the
// audit key, denies.
func TestRedFlagsSignedByTheAuditKey(t *testing.T) {
	builder, builderID := newKey(t)
	audit, auditID := newKey(t)
	dave, daveID := newKey(t)
	tm, err := KeyMaterial(builder.Public(), audit.Public(), dave.Public())
	if err != nil {
		t.Fatal(err)
	}
	prov := sign(t, builder, attest.PredicateSLSAv1, provenance())
	sum := sha256.Sum256(prov)
	flags := func(fs ...attest.RedFlag) attest.RedFlagsPredicate {
		return attest.RedFlagsPredicate{ComputedBy: "https://custody.example", ComputedAt: time.Now().UTC(),
			Build:   attest.RedFlagsBuild{Bundle: hex.EncodeToString(sum[:]), EvidenceID: 1},
			Lineage: attest.RedFlagsLineage{SubjectName: "app", Compared: 3}, Flags: append([]attest.RedFlag{}, fs...)}
	}
	newDep := attest.RedFlag{Kind: "new-dependency", Subject: "example.com/evil", Message: "example.com/evil v1.0.0 is new to this lineage", Clear: "review example.com/evil"}
	serverFlags := sign(t, audit, attest.PredicateRedFlags, flags(newDep))
	forged := sign(t, builder, attest.PredicateRedFlags, flags())
	appr, err := attest.NewApproval(attest.ApprovalPredicate{Environment: "prod", Artifact: digest, Approver: "dave", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	approval := sign(t, dave, attest.PredicateApproval, appr.Predicate)

	p, err := policy.Parse([]byte(`apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [https://custody.dev/builders/local@v1]
signers: [{keyId: ` + builderID + `}]
groups: {security: [{name: dave, keyIds: [` + daveID + `]}]}
redFlags:
  signers: [{keyId: ` + auditID + `}]
  requireApproval: {new-dependency: {group: security, count: 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		bundles [][]byte
		fail    string // the only failing requirement, or ""
	}{
		{"the server's flags hold the build", [][]byte{prov, serverFlags}, "redflag:new-dependency"},
		{"a security approval clears it", [][]byte{prov, serverFlags, approval}, ""},
		{"the builder's forged clean statement fails closed", [][]byte{prov, forged}, policy.ReqRedFlags},
		{"the forged statement does not hide the server's", [][]byte{prov, forged, serverFlags}, "redflag:new-dependency"},
		{"no statement fails closed", [][]byte{prov}, policy.ReqRedFlags},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, rej, err := Gather(context.Background(), digest, tc.bundles, tm)
			if err != nil || len(rej) > 0 {
				t.Fatalf("gather: %v %+v", err, rej)
			}
			d, err := p.Evaluate(context.Background(), ev, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range d.Failures {
				got = append(got, f.Requirement)
			}
			if strings.Join(got, ",") != tc.fail {
				t.Fatalf("failures %v, want %q: %+v", got, tc.fail, d.Failures)
			}
		})
	}
	// A red flags predicate that does not parse is rejected, never half-read.
	bad := sign(t, audit, attest.PredicateRedFlags, map[string]any{"computedBy": "x", "flags": []any{map[string]any{"kind": "BAD KIND", "message": "m"}}})
	_, rej, err := Gather(context.Background(), digest, [][]byte{prov, bad}, tm)
	if err != nil || len(rej) != 1 || rej[0].Index != 1 {
		t.Fatalf("malformed red flags not rejected: %v %+v", err, rej)
	}
}
