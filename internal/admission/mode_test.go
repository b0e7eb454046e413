package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/custody-dev/custody/attest"
)

// vsaLog records the VSAs a webhook writes.
type vsaLog struct {
	mu   sync.Mutex
	vsas []map[string]any
}

func (l *vsaLog) Record(_ context.Context, _, _ string, vsa []byte) error {
	var st map[string]any
	if err := json.Unmarshal(vsa, &st); err != nil {
		return err
	}
	l.mu.Lock()
	l.vsas = append(l.vsas, st)
	l.mu.Unlock()
	return nil
}

// waitFor waits (generously) until n VSAs are recorded and returns them.
func (l *vsaLog) waitFor(t *testing.T, n int) []map[string]any {
	t.Helper()
	for limit := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
		l.mu.Lock()
		got := append([]map[string]any(nil), l.vsas...)
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(limit) {
			t.Fatalf("%d VSAs recorded, want %d", len(got), n)
		}
	}
}

// staticQuarantine quarantines one digest.
type staticQuarantine struct{ digest, incident string }

func (q staticQuarantine) Quarantined(_ context.Context, digest string) (string, error) {
	if digest == q.digest {
		return q.incident, nil
	}
	return "", nil
}

// TestModes: the webhook's configuration alone sets the mode. In enforce
// mode a failing image is denied; in warn mode it is admitted with the
// reasons as warnings; in audit mode it is admitted silently, its FAILED
// decision recorded as a VSA naming the mode and counted. A quarantine
// and a malformed review are denied in every mode, and an object's
// labels and annotations (or its metadata.namespace) cannot pick a mode.
func TestModes(t *testing.T) {
	vsas := &vsaLog{}
	quarantined := "sha256:" + strings.Repeat("d4", 32)
	f := newFixture(t, func(c *Config) {
		c.Namespaces = map[string]string{"shop": "prod", "shop-canary": "prod", "*": "dev"}
		c.Modes = Modes{Environments: map[string]Mode{"dev": ModeWarn}, Namespaces: map[string]Mode{"shop-canary": ModeAudit}}
		c.Decisions = vsas
		c.Quarantine = staticQuarantine{quarantined, "INC-1"}
	})
	ask := func(uid, ns string, obj any) *admissionv1.AdmissionResponse {
		t.Helper()
		_, r := f.post(review(t, uid, ns, podKind, obj))
		return r.Response
	}
	failing := "ghcr.io/org/app@" + noSBOM

	// enforce (the default): denied
	if r := ask("e1", "shop", pod(failing)); r.Allowed || len(r.Warnings) > 0 || r.AuditAnnotations["mode"] != "" {
		t.Fatalf("enforce: %+v", r)
	}

	// audit: admitted, no warning, annotated, recorded, counted
	r := ask("a1", "shop-canary", pod(failing))
	if !r.Allowed || len(r.Warnings) > 0 || r.Result != nil {
		t.Fatalf("audit: %+v", r)
	}
	if r.AuditAnnotations["mode"] != "audit" || !strings.Contains(r.AuditAnnotations["would-deny"], "evidence:sbom") {
		t.Fatalf("audit annotations %v", r.AuditAnnotations)
	}
	got := vsas.waitFor(t, 2)
	var audited bool
	for _, st := range got {
		pred := st["predicate"].(map[string]any)
		adm := pred["custody"].(map[string]any)["admission"].(map[string]any)
		if adm["mode"] == "audit" {
			audited = true
			if pred["verificationResult"] != "FAILED" || adm["namespace"] != "shop-canary" || st["predicateType"] != attest.PredicateVSA {
				t.Fatalf("audit VSA %v", st)
			}
		}
	}
	if !audited {
		t.Fatalf("no VSA names audit mode: %v", got)
	}
	// A cached denial admitted in audit mode again: no second VSA (the
	// first is recent), counted again.
	if r := ask("a2", "shop-canary", pod(failing)); !r.Allowed {
		t.Fatalf("audit (cached): %+v", r)
	}
	m := f.scrape()
	if n := m[`custody_admission_would_deny_total{environment="prod",mode="audit",reason="policy"}`]; n != 2 {
		t.Fatalf("would_deny audit = %v, want 2\n%v", n, m)
	}

	// warn: admitted with the reasons as warnings, tags included
	r = ask("w1", "elsewhere", pod("nginx:1.27", "ghcr.io/org/other@"+otherDigest))
	if !r.Allowed || len(r.Warnings) != 2 || r.AuditAnnotations["mode"] != "warn" {
		t.Fatalf("warn: %+v", r)
	}
	if !strings.Contains(r.Warnings[0], `container c0 image "nginx:1.27": it is not referenced by digest`) ||
		!strings.Contains(r.Warnings[1], "no verified SLSA provenance") {
		t.Fatalf("warnings %q", r.Warnings)
	}
	for _, w := range r.Warnings {
		if !strings.HasPrefix(w, "custody (warn mode in dev, would deny): ") || len(w) > maxWarningBytes || strings.ContainsAny(w, "\n\r") {
			t.Errorf("warning %q", w)
		}
	}

	// quarantine: denied in audit and warn modes
	for _, ns := range []string{"shop-canary", "elsewhere"} {
		if r := ask("q-"+ns, ns, pod("app@"+quarantined)); r.Allowed || !strings.Contains(r.Result.Message, "INC-1") {
			t.Fatalf("quarantined image in %s: %+v", ns, r)
		}
	}

	// labels, annotations and metadata.namespace do not choose the mode
	p := pod(failing)
	p.Labels = map[string]string{"custody.dev/admission-mode": "audit", "custody.dev/mode": "audit"}
	p.Annotations = map[string]string{"custody.dev/admission-mode": "audit"}
	p.Namespace = "shop-canary"
	if r := ask("l1", "shop", p); r.Allowed {
		t.Fatal("an object's labels switched its namespace to audit mode")
	}

	// over --max-images in audit mode: admitted, nothing evaluated, counted
	fetched := f.fetches.Load()
	many := make([]string, 70)
	for i := range many {
		many[i] = "app@sha256:" + strings.Repeat(fmt.Sprintf("%02x", i), 32)
	}
	if r := ask("c1", "shop-canary", pod(many...)); !r.Allowed || !strings.Contains(r.AuditAnnotations["would-deny"], "more than the 64") {
		t.Fatalf("over the cap in audit mode: %+v", r)
	}
	if f.fetches.Load() != fetched {
		t.Fatal("evidence fetched for a review over the cap")
	}
	if n := f.scrape()[`custody_admission_would_deny_total{environment="prod",mode="audit",reason="too_many_images"}`]; n != 1 {
		t.Fatalf("would_deny too_many_images = %v", n)
	}

	// malformed: denied in audit mode
	_, rr := f.post([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"m1","namespace":"shop-canary","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{"containers":"nope"}}}}`))
	if rr.Response.Allowed {
		t.Fatal("malformed review admitted in audit mode")
	}
}

// TestWarningsBounded: a warn mode answer has at most maxWarnings+1
// warnings of at most maxWarningBytes, printable.
func TestWarningsBounded(t *testing.T) {
	lines := make([]string, 40)
	for i := range lines {
		lines[i] = strings.Repeat("é\n\x00", 300)
	}
	w := warnings("dev", lines)
	if len(w) != maxWarnings+1 || !strings.Contains(w[maxWarnings], "24 more") {
		t.Fatalf("%d warnings, last %q", len(w), w[len(w)-1])
	}
	for _, s := range w {
		if len(s) > maxWarningBytes || strings.ContainsAny(s, "\n\x00") {
			t.Fatalf("warning %q", s)
		}
	}
}

// TestParseModes: a modes file with an unknown mode or field, or two
// documents, is refused; so is a webhook given a mode for an environment
// without a policy.
func TestParseModes(t *testing.T) {
	m, err := ParseModes([]byte("default: warn\nenvironments:\n  prod: enforce\nnamespaces:\n  shop-canary: audit\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Of("shop-canary", "prod") != ModeAudit || m.Of("shop", "prod") != ModeEnforce || m.Of("x", "dev") != ModeWarn {
		t.Fatalf("%+v", m)
	}
	if (Modes{}).Of("x", "y") != ModeEnforce {
		t.Fatal("the default mode is not enforce")
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown mode", "environments:\n  prod: enfroce\n", `environment prod: unknown admission mode "enfroce": want enforce, warn or audit`},
		{"unknown default", "default: permissive\n", `default: unknown admission mode "permissive"`},
		{"empty mode", "namespaces:\n  shop: ''\n", `namespace shop: unknown admission mode ""`},
		{"unknown field", "environment:\n  prod: audit\n", "field environment not found"},
		{"duplicate key", "namespaces:\n  a: audit\n  a: enforce\n", "already defined"},
		{"two documents", "default: audit\n---\ndefault: enforce\n", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseModes([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	f := newFixture(t, nil)
	cfg := f.wh.cfg
	cfg.Modes = Modes{Environments: map[string]Mode{"staging": ModeAudit}}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "environment staging has a mode but no policy") {
		t.Fatalf("New: %v", err)
	}
	cfg.Modes = Modes{Default: "off"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), `unknown admission mode "off"`) {
		t.Fatalf("New: %v", err)
	}
}
