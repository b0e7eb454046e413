package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	kjson "sigs.k8s.io/json"
)

// manifests decodes the YAML documents of a file as JSON objects.
func manifests(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
}

func strictDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	strict, err := kjson.UnmarshalStrict(b, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil || len(strict) > 0 {
		t.Fatalf("%v %v", err, strict)
	}
}

// TestManifests checks deploy/kubernetes against the Kubernetes types: the
// webhook fails closed, has no side effects, a timeout, and routes every
// kind Images decides; the webhook's own Deployment pins its image.
func TestManifests(t *testing.T) {
	docs := manifests(t, "../../deploy/kubernetes/webhook.yaml")
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	strictDecode(t, docs[0], &vwc)
	if len(vwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(vwc.Webhooks))
	}
	wh := vwc.Webhooks[0]
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail {
		t.Error("failurePolicy is not Fail")
	}
	if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Error("sideEffects is not None")
	}
	if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds < 3 || *wh.TimeoutSeconds > 30 {
		t.Error("timeoutSeconds missing or not above the webhook's 2s default timeout")
	}
	if wh.ClientConfig.Service == nil || wh.ClientConfig.Service.Path == nil || *wh.ClientConfig.Service.Path != "/validate" {
		t.Error("clientConfig does not call /validate")
	}
	if len(wh.AdmissionReviewVersions) != 1 || wh.AdmissionReviewVersions[0] != "v1" {
		t.Errorf("admissionReviewVersions %v", wh.AdmissionReviewVersions)
	}
	routed := map[string]bool{}
	for _, r := range wh.Rules {
		ops := map[admissionregistrationv1.OperationType]bool{}
		for _, op := range r.Operations {
			ops[op] = true
		}
		if !ops[admissionregistrationv1.Create] || !ops[admissionregistrationv1.Update] {
			t.Errorf("rule %v does not cover CREATE and UPDATE", r.Resources)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				routed[g+"/"+res] = true
			}
		}
	}
	for _, want := range []string{"/pods", "/pods/ephemeralcontainers", "/replicationcontrollers", "apps/deployments", "apps/statefulsets",
		"apps/daemonsets", "apps/replicasets", "batch/jobs", "batch/cronjobs"} {
		if !routed[want] {
			t.Errorf("%s is not routed to the webhook", want)
		}
	}

	var found bool
	for _, d := range manifests(t, "../../deploy/kubernetes/deployment.yaml") {
		var meta struct{ Kind string }
		json.Unmarshal(d, &meta)
		if meta.Kind != "Deployment" {
			continue
		}
		found = true
		var dep appsv1.Deployment
		strictDecode(t, d, &dep)
		for _, c := range dep.Spec.Template.Spec.Containers {
			if dg, problem := ParseDigest(c.Image); dg == "" {
				t.Errorf("the webhook's own image %q: %s", c.Image, problem)
			}
		}
	}
	if !found {
		t.Error("no Deployment in deployment.yaml")
	}
}
