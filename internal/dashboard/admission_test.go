package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/admission"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
)

// TestAdmissionModes: the environments page shows the mode each namespace
// was last decided in by the admission webhook and how many FAILED
// decisions warn or audit mode admitted, read from the decisions (VSAs)
// the webhook had the server sign with a deployer token, as custody
// admission --server does.
func TestAdmissionModes(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	dep, err := client.New(s.url, s.deployer, client.WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte("apiVersion: custody.dev/policy/v1\nenvironment: prod\ntrustedBuilders: [https://b]\nsigners: [{keyId: " + strings.Repeat("ab", 32) + "}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := gate.KeyMaterial()
	if err != nil {
		t.Fatal(err)
	}
	wh, err := admission.New(admission.Config{Policies: map[string]*policy.Policy{"prod": p}, Namespaces: map[string]string{"*": "prod"},
		Source: admission.SourceFunc(func(context.Context, string) ([]gate.Bundle, error) { return nil, nil }), Trust: tm,
		Modes: admission.Modes{Namespaces: map[string]admission.Mode{"shop-canary": admission.ModeAudit}},
		Decisions: admission.RecorderFunc(func(ctx context.Context, _, _ string, vsa []byte) error {
			_, err := dep.Sign(ctx, vsa)
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	for i, ns := range []string{"shop", "shop-canary"} {
		body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u%d","namespace":%q,"operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"metadata":{"name":"web"},"spec":{"containers":[{"name":"web","image":"app@sha256:%s"}]}}}}`,
			i, ns, strings.Repeat(fmt.Sprintf("%d", 7+i), 64))
		req, err := admission.ParseReview([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if resp := wh.Review(ctx, req); resp.Allowed != (ns == "shop-canary") {
			t.Fatalf("%s: allowed %v", ns, resp.Allowed)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := wh.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if m := wh.Metrics(); m == nil {
		t.Fatal("no metrics")
	}
	code, body := get(t, s.url+"/ui/environment/prod", s.auditor)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	for _, want := range []string{`data-mode="enforce">shop: enforce`, `data-mode="audit">shop-canary: audit`, `data-admitted="1"`,
		"1 FAILED decision(s) admitted in warn or audit mode", "2 decision(s) in 168h0m0s"} {
		if !strings.Contains(body, want) {
			t.Errorf("the environment page lacks %q", want)
		}
	}
}
