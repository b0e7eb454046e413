package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/custody-dev/custody/attest"
)

// testStatement is the provenance of build i of the artifact "NAME i".
func testStatement(t *testing.T, name string, i int) []byte {
	t.Helper()
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d", name, i))
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://example.com/org/repo", Commit: strings.Repeat("ab", 20)}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/test@v1"},
			Metadata: &attest.BuildMetadata{InvocationID: fmt.Sprintf("build-%s-%d", name, i)}},
	}
	stmt, err := attest.NewStatement([]attest.Subject{{Name: name, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}}, attest.PredicateSLSAv1, prov)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stmt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A client that remembers checkpoints in one directory (the CLI's) talks
// to two servers on 127.0.0.1: their logs share the origin "127.0.0.1" but
// not the key, and each is checked against its own remembered checkpoint.
// Before, the second server's first signed build failed with "remembered
// checkpoint of 127.0.0.1: couldn't verify checkpoint signature", after
// that server had signed and logged it.
func TestTwoServersOneHost(t *testing.T) {
	ctx := context.Background()
	a, b := startAuditServer(t), startAuditServer(t)
	dir := t.TempDir()
	for round := range 2 {
		for name, as := range map[string]*auditServer{"A": a, "B": b} {
			c, err := New(as.url, as.tokens["builder"], WithCheckpointDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Sign(ctx, testStatement(t, name, round)); err != nil {
				t.Errorf("round %d, server %s: %v", round, name, err)
			}
			if _, err := c.Log(ctx); err != nil {
				t.Errorf("round %d, server %s, log: %v", round, name, err)
			}
		}
	}
}
