package admission

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/signer"
)

// TestRedFlags: the webhook decides a redFlags policy as the CLI does: a
// flag the audit key signed denies, naming it and what clears it; a
// statement the builder signs itself does not count, and without the
// audit key's the pod is refused (fail closed).
func TestRedFlags(t *testing.T) {
	audit, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	auditID, _ := gate.KeyID(audit.Public())
	flagged := "sha256:" + strings.Repeat("d4", 32)
	forged := "sha256:" + strings.Repeat("e5", 32)
	f := newFixture(t, func(c *Config) {
		builderID := c.Policies["prod"].Signers[0].KeyID
		c.Policies["prod"] = mustPolicy(t, fmt.Sprintf(policyTmpl, "prod", builderID,
			"redFlags:\n  signers: [{keyId: "+auditID+"}]\n  deny: [new-source]\n"))
		tm, err := gate.KeyMaterial(audit.Public())
		if err != nil {
			t.Fatal(err)
		}
		c.Trust = root.TrustedMaterialCollection{c.Trust, tm}
	})
	for _, x := range []struct {
		dg    string
		flags []attest.RedFlag
	}{
		{dg: flagged, flags: []attest.RedFlag{{Kind: "new-source", Subject: "github.com/fork/app", Message: "app was never built from github.com/fork/app before", Clear: "build from github.com/org/app"}}},
		{dg: forged},
	} {
		prov := f.sign(x.dg, attest.PredicateSLSAv1, f.provenance())
		sum := sha256.Sum256(prov)
		pred := attest.RedFlagsPredicate{ComputedBy: "https://custody.example", ComputedAt: time.Now().UTC(),
			Build: attest.RedFlagsBuild{Bundle: hex.EncodeToString(sum[:])}, Lineage: attest.RedFlagsLineage{SubjectName: "app", Compared: 3},
			Flags: append([]attest.RedFlag{}, x.flags...)}
		builder := f.key
		if x.dg == flagged {
			f.key = audit // signed as the server signs red flags
		}
		flags := f.sign(x.dg, attest.PredicateRedFlags, pred)
		f.key = builder
		f.evidence[x.dg] = [][]byte{prov, flags}
	}
	for _, tc := range []struct {
		name, dg, want string
	}{
		{"the audit key's flag denies", flagged, "denied in prod: redflag:new-source: red flag new-source: app was never built from github.com/fork/app before"},
		{"a builder's own statement does not count", forged, "denied in prod: redflags: no red flags statement signed by a redFlags signer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, r := f.post(review(t, "u-"+tc.dg[7:15], "shop", podKind, pod("ghcr.io/org/app@"+tc.dg)))
			if code != http.StatusOK || r.Response.Allowed {
				t.Fatalf("status %d, allowed %v", code, r.Response.Allowed)
			}
			if msg := r.Response.Result.Message; !strings.Contains(msg, tc.want) {
				t.Fatalf("message does not say %q:\n%s", tc.want, msg)
			}
		})
	}
}
