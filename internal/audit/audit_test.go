package audit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// trailServer starts a custody server in this process, with one signed
// build (a "sign" entry) and two deployments (audit entries), and returns
// a client with an auditor token and the server's audit key.
func trailServer(t *testing.T) (*client.Client, crypto.PublicKey) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	s, err := server.Open(ctx, server.Config{Dir: dir, PublicURL: url, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	newClient := func(r api.Role) *client.Client {
		tok, err := tokenfile.CreateToken(dir, r, "", "test "+string(r))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(url, tok, client.WithCheckpointDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	digest := strings.Repeat("ab", 32)
	prov := attest.ProvenanceV1{
		BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
			ExternalParameters: attest.CustodyExternalParameters{Command: []string{"make"}, WorkingDir: ".",
				Source: attest.CustodySource{URI: "git+https://example.com/org/repo", Commit: strings.Repeat("ab", 20)}}},
		RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/test@v1"}},
	}
	st, err := attest.NewStatement([]attest.Subject{{Name: "app", Digest: map[string]string{"sha256": digest}}}, attest.PredicateSLSAv1, prov)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(api.RoleBuilder).Sign(ctx, payload); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	dep := newClient(api.RoleDeployer)
	for _, env := range []string{"staging", "prod"} {
		d := &store.Deployment{Environment: env, Event: store.EventDeployed, Artifact: "sha256:" + digest, Name: "app", Actor: "ci", Time: time.Now()}
		if _, err := dep.AppendDeployment(ctx, d); err != nil {
			t.Fatalf("AppendDeployment: %v", err)
		}
	}
	s.WaitRedFlags() // the build's red flags, signed by the audit key, are in the trail too
	cl := newClient(api.RoleAuditor)
	b, err := cl.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signer.ParsePublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return cl, key
}

func actions(rep *Report) []string {
	var out []string
	for _, e := range rep.Trail {
		out = append(out, e.Action)
	}
	return out
}

// Every entry verifies against the server's audit key; a query selects
// entries; a complete check walks the log and finds nothing left out.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	cl, key := trailServer(t)
	rep, err := Check(ctx, cl, Options{AuditKey: key, Query: client.AuditQuery{Action: "deployment"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(actions(rep), ","); got != "deployment.deployed,deployment.deployed" || len(rep.Failed) != 0 {
		t.Errorf("trail %s, failed %v; want two verified deployments", got, rep.Failed)
	}
	rep, err = Check(ctx, cl, Options{AuditKey: key, Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Incomplete != nil || rep.Walk == nil || rep.Walk.Size < 3 || len(rep.Failed) != 0 {
		t.Errorf("complete check: incomplete %v, walk %+v, failed %v", rep.Incomplete, rep.Walk, rep.Failed)
	}
	if !strings.Contains(strings.Join(actions(rep), ","), client.ActionSign) {
		t.Errorf("complete trail %v has no sign entry", actions(rep))
	}
	if _, err := Check(ctx, cl, Options{AuditKey: key, Complete: true, Query: client.AuditQuery{Actor: "ci"}}); !errors.Is(err, ErrFiltered) {
		t.Errorf("complete check with a query = %v, want ErrFiltered", err)
	}
}

// Audit entries checked against another key than the server's fail: a
// trail signed by someone else is not the server's.
func TestCheckWrongAuditKey(t *testing.T) {
	ctx := context.Background()
	cl, _ := trailServer(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, cl, Options{AuditKey: other.Public()})
	if err != nil {
		t.Fatal(err)
	}
	// the two deployments and the build's red flags fail; the build,
	// signed by the server's builder key, still verifies
	if len(rep.Trail) != 4 || len(rep.Failed) != 3 {
		t.Errorf("trail %v, failed = %q; want the red flags and both deployments of four entries failed", actions(rep), rep.Failed)
	}
}

// With a trust root that does not hold the key the build was signed
// with, the signer is named untrusted.
func TestCheckUntrustedSigner(t *testing.T) {
	ctx := context.Background()
	cl, key := trailServer(t)
	admin, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, err := trust.NewDocument([]trust.Key{{PublicKey: admin.Public()}}, 1, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, cl, Options{AuditKey: key, TrustRoot: root, Query: client.AuditQuery{Action: client.ActionSign}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Trail) != 1 || len(rep.Failed) != 0 {
		t.Fatalf("trail %v, failed %v; want one verified sign entry", actions(rep), rep.Failed)
	}
	if len(rep.Untrusted) != 1 || !strings.Contains(rep.Untrusted[0], client.NotInTrustRoot) {
		t.Errorf("untrusted = %q, want the build's signer not in the trust root", rep.Untrusted)
	}
}
