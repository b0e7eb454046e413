package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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

// TestManifestsMutating checks deploy/kubernetes/mutating.yaml against the
// Kubernetes types: /mutate fails closed, has no side effects, is
// reinvoked after other mutating webhooks, and sees every object the
// validating webhook sees, in the same namespaces; the modes ConfigMap
// parses and names only known modes; the Deployment serves /mutate with an
// allow-list of registries and reads the modes from the ConfigMap it
// mounts.
func TestManifestsMutating(t *testing.T) {
	docs := manifests(t, "../../deploy/kubernetes/mutating.yaml")
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	strictDecode(t, docs[0], &mwc)
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	strictDecode(t, manifests(t, "../../deploy/kubernetes/webhook.yaml")[0], &vwc)
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(mwc.Webhooks))
	}
	mw, vw := mwc.Webhooks[0], vwc.Webhooks[0]
	if mw.FailurePolicy == nil || *mw.FailurePolicy != admissionregistrationv1.Fail {
		t.Error("failurePolicy is not Fail")
	}
	if mw.SideEffects == nil || *mw.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Error("sideEffects is not None")
	}
	if mw.ReinvocationPolicy == nil || *mw.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Error("reinvocationPolicy is not IfNeeded: an image a later mutating webhook adds would stay unpinned")
	}
	if mw.ClientConfig.Service == nil || mw.ClientConfig.Service.Path == nil || *mw.ClientConfig.Service.Path != "/mutate" {
		t.Error("clientConfig does not call /mutate")
	}
	if ms, vs := mw.ClientConfig.Service, vw.ClientConfig.Service; ms == nil || vs == nil || ms.Name != vs.Name || ms.Namespace != vs.Namespace {
		t.Error("the mutating and validating webhooks call different services")
	}
	if mw.TimeoutSeconds == nil || *mw.TimeoutSeconds < 3 {
		t.Error("timeoutSeconds missing or not above the webhook's 2s default timeout")
	}
	if !reflect.DeepEqual(mw.Rules, vw.Rules) {
		t.Errorf("mutating rules %v differ from the validating rules %v: some objects would be validated unpinned", mw.Rules, vw.Rules)
	}
	if !reflect.DeepEqual(mw.NamespaceSelector, vw.NamespaceSelector) {
		t.Error("the namespace selectors differ")
	}

	var cm corev1.ConfigMap
	strictDecode(t, manifests(t, "../../deploy/kubernetes/modes.yaml")[0], &cm)
	modes, err := ParseModes([]byte(cm.Data["modes.yaml"]))
	if err != nil {
		t.Fatalf("modes ConfigMap: %v", err)
	}
	if modes.Of("elsewhere", "prod") != ModeEnforce {
		t.Error("the modes ConfigMap does not enforce by default")
	}

	for _, d := range manifests(t, "../../deploy/kubernetes/deployment.yaml") {
		var dep appsv1.Deployment
		if json.Unmarshal(d, &dep); dep.Kind != "Deployment" {
			continue
		}
		spec := dep.Spec.Template.Spec
		args := strings.Join(spec.Containers[0].Args, " ")
		for _, want := range []string{"--mutate", "--allow-registry=", "--registry-evidence", "--modes=/etc/custody/modes/modes.yaml"} {
			if !strings.Contains(args, want) {
				t.Errorf("the webhook's args lack %s", want)
			}
		}
		mounted := false
		for _, m := range spec.Containers[0].VolumeMounts {
			for _, v := range spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name && m.MountPath == "/etc/custody/modes" {
					mounted = true
				}
			}
		}
		if !mounted {
			t.Errorf("the modes ConfigMap %s is not mounted at /etc/custody/modes", cm.Name)
		}
	}
}
