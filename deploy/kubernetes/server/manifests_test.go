// Package server_test checks the manifests of a replicated custody serve
// (deploy/kubernetes/server) against the Kubernetes types.
package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
)

// objects decodes the YAML documents of path strictly into the Kubernetes
// type their kind names.
func objects(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
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
		var v any
		switch doc["kind"] {
		case "Service":
			v = new(corev1.Service)
		case "Deployment":
			v = new(appsv1.Deployment)
		case "StatefulSet":
			v = new(appsv1.StatefulSet)
		case "PodDisruptionBudget":
			v = new(policyv1.PodDisruptionBudget)
		default:
			t.Fatalf("%s: unexpected kind %v", path, doc["kind"])
		}
		strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil || len(strict) > 0 {
			t.Fatalf("%s: %v %v", path, err, strict)
		}
		name := doc["metadata"].(map[string]any)["name"].(string)
		out[doc["kind"].(string)+"/"+name] = v
	}
}

// TestServerManifests: the replicated server runs several replicas that
// keep no state on their disk (the log in MariaDB, everything else in
// PostgreSQL), shares its keys through one secret, is ready only when it
// can write, keeps two replicas through voluntary disruptions, and its
// Service selects its pods.
func TestServerManifests(t *testing.T) {
	objs := objects(t, "server.yaml")
	dep, ok := objs["Deployment/custody-server"].(*appsv1.Deployment)
	if !ok {
		t.Fatal("no Deployment custody-server")
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.Contains(c.Image, "@sha256:") {
		t.Errorf("image %s is not pinned by digest", c.Image)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"serve", "--db=$(CUSTODY_DB)", "--log=mysql://", "--log-key=/etc/custody/keys/", "--tsa-key=/etc/custody/keys/",
		"--audit-key=/etc/custody/keys/", "--builder-key=builder=/etc/custody/keys/", "--tls-cert="} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q: %s", want, args)
		}
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe is not GET /readyz: %+v", c.ReadinessProbe)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe is not GET /healthz: %+v", c.LivenessProbe)
	}
	env := map[string]*corev1.EnvVarSource{}
	for _, e := range c.Env {
		if e.Value != "" {
			t.Errorf("env %s is set in the manifest, not from a secret", e.Name)
		}
		env[e.Name] = e.ValueFrom
	}
	for _, name := range []string{"CUSTODY_DB", "CUSTODY_MYSQL_PASSWORD", "CUSTODY_SERVER_PASSWORD"} {
		if env[name] == nil || env[name].SecretKeyRef == nil {
			t.Errorf("%s does not come from a secret", name)
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v := vols[m.Name]
		switch {
		case m.MountPath == "/var/lib/custody" && v.EmptyDir == nil:
			t.Errorf("the data directory is %+v, not scratch (replicas keep no state on disk)", v)
		case strings.HasPrefix(m.MountPath, "/etc/custody/") && (v.Secret == nil || !m.ReadOnly):
			t.Errorf("%s is not a read-only secret", m.MountPath)
		}
	}
	if v := vols["keys"]; v.Secret == nil || v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o077 != 0 {
		t.Errorf("key files are not a private secret volume: %+v", v)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container security context: %+v", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the server needs no Kubernetes API token")
	}
	pdb, ok := objs["PodDisruptionBudget/custody-server"].(*policyv1.PodDisruptionBudget)
	if !ok || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || pdb.Spec.MinAvailable.IntValue() >= int(*dep.Spec.Replicas) {
		t.Errorf("PodDisruptionBudget must keep at least one and fewer than all replicas: %+v", pdb)
	}
	svc, ok := objs["Service/custody"].(*corev1.Service)
	if !ok {
		t.Fatal("no Service custody")
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("Service selects %s=%s, which the pods lack", k, v)
		}
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.StrVal == "https" }) {
		t.Error("Service does not target the https port")
	}
	dbs := objects(t, "databases.yaml")
	for _, name := range []string{"StatefulSet/custody-postgres", "StatefulSet/custody-mariadb", "Service/custody-postgres", "Service/custody-mariadb"} {
		if dbs[name] == nil {
			t.Errorf("databases.yaml lacks %s", name)
		}
	}
	if !strings.Contains(args, "custody-mariadb:3306") || !strings.Contains(strings.Join(fileLines(t, "server.yaml"), "\n"), "custody-postgres:5432") {
		t.Error("the server does not name the databases' Services")
	}
}

func fileLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}
