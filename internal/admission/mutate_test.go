package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/custody-dev/custody/attest"
)

// mutateFixture is a webhook serving /mutate with tags resolved at a real
// registry (testRegistry), counting resolutions.
type mutateFixture struct {
	*fixture
	reg      *testRegistry
	resolves atomic.Int64
}

func newMutateFixture(t *testing.T, mod func(*Config)) *mutateFixture {
	t.Helper()
	mf := &mutateFixture{reg: newTestRegistry(t)}
	mf.fixture = newFixture(t, func(c *Config) {
		inner := mf.reg.resolver()
		c.Resolver = ResolverFunc(func(ctx context.Context, tag Tag) (string, error) {
			mf.resolves.Add(1)
			return inner.Resolve(ctx, tag)
		})
		c.Registries = []string{mf.reg.host}
		c.Timeout = 3 * time.Second
		if mod != nil {
			mod(c)
		}
	})
	return mf
}

// postTo sends body to path and decodes the answer.
func (f *fixture) postTo(path string, body []byte) (int, *admissionv1.AdmissionReview) {
	f.t.Helper()
	resp, err := f.srv.Client().Post(f.srv.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.decode(resp)
}

// applyPatch applies a JSON Patch of test and replace operations to obj,
// as the API server does, failing the test on anything else.
func applyPatch(t *testing.T, obj any, patch []byte) any {
	t.Helper()
	var ops []map[string]any
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	b, _ := json.Marshal(obj)
	var doc any
	json.Unmarshal(b, &doc)
	for _, op := range ops {
		path := op["path"].(string)
		parts := strings.Split(path, "/")[1:]
		parent := doc
		for _, p := range parts[:len(parts)-1] {
			switch v := parent.(type) {
			case map[string]any:
				parent = v[p]
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i >= len(v) {
					t.Fatalf("path %s", path)
				}
				parent = v[i]
			}
		}
		last := parts[len(parts)-1]
		m, ok := parent.(map[string]any)
		if !ok {
			t.Fatalf("path %s does not end in an object member", path)
		}
		switch op["op"] {
		case "test":
			if m[last] != op["value"] {
				t.Fatalf("test %s: %v, want %v", path, m[last], op["value"])
			}
		case "replace":
			if _, ok := m[last]; !ok {
				t.Fatalf("replace %s: no such member", path)
			}
			m[last] = op["value"]
		default:
			t.Fatalf("patch op %v", op["op"])
		}
	}
	return doc
}

// TestMutate: /mutate pins every tag of a workload (init, app and
// ephemeral containers, image volumes) to the digest its registry serves,
// by a JSON Patch that tests each reference and changes nothing else; the
// pinned object then passes /validate on that digest, and a tag moved
// between the two does not change what /validate decides on.
func TestMutate(t *testing.T) {
	mf := newMutateFixture(t, nil)
	app := mf.reg.push(t, "app", "1.4")
	side := mf.reg.push(t, "side", "2")
	im := mf.reg.image
	for _, dg := range []string{app, side} {
		mf.evidence[dg] = [][]byte{mf.sign(dg, attest.PredicateSLSAv1, mf.provenance()),
			mf.sign(dg, attest.PredicateCycloneDX, map[string]any{"bomFormat": "CycloneDX"})}
	}
	spec := corev1.PodSpec{
		InitContainers:      []corev1.Container{{Name: "init", Image: im("side", ":2")}},
		Containers:          []corev1.Container{{Name: "app", Image: im("app", ":1.4"), Args: []string{"--image", im("app", ":1.4")}}, {Name: "pinned", Image: im("app", "@"+app)}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: im("side", ":2")}}},
		Volumes:             []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: im("app", ":1.4")}}}},
	}
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}}, Spec: spec}

	_, r := mf.postTo("/mutate", review(t, "m1", "shop", podKind, p))
	resp := r.Response
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("mutate: %+v", resp)
	}
	if n := mf.resolves.Load(); n != 2 {
		t.Fatalf("%d resolutions for 2 distinct tags", n)
	}
	got := applyPatch(t, p, resp.Patch)
	want := p.DeepCopy()
	want.Spec.InitContainers[0].Image = im("side", ":2@"+side)
	want.Spec.Containers[0].Image = im("app", ":1.4@"+app)
	want.Spec.EphemeralContainers[0].Image = im("side", ":2@"+side)
	want.Spec.Volumes[0].Image.Reference = im("app", ":1.4@"+app)
	var wantDoc any
	b, _ := json.Marshal(want)
	json.Unmarshal(b, &wantDoc)
	if !reflect.DeepEqual(got, wantDoc) {
		t.Fatalf("patched object:\n%v\nwant (only the image references changed):\n%v", got, wantDoc)
	}

	// The tag moves to other content after the mutation: /validate still
	// decides on the digest in the spec, and admits it.
	moved := mf.reg.push(t, "app", "1.4")
	if moved == app {
		t.Fatal("the tag did not move")
	}
	_, v := mf.postTo("/validate", review(t, "v1", "shop", podKind, got))
	if !v.Response.Allowed {
		t.Fatalf("validate of the pinned pod: %+v", v.Response.Result)
	}
	// The tag itself, unpinned, is denied by /validate.
	_, v = mf.postTo("/validate", review(t, "v2", "shop", podKind, pod(im("app", ":1.4"))))
	if v.Response.Allowed {
		t.Fatal("validate admitted a tag")
	}
	// A pinned workload: nothing to patch.
	_, r = mf.postTo("/mutate", review(t, "m2", "shop", deploymentKind, deployment(corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: im("app", "@"+app)}}})))
	if !r.Response.Allowed || r.Response.Patch != nil {
		t.Fatalf("mutate of a pinned deployment: %+v", r.Response)
	}
	// A CronJob's template is pinned at its own path.
	_, r = mf.postTo("/mutate", review(t, "m3", "shop", cronJobKind, cronJob(im("app", ":1.4"))))
	if !strings.Contains(string(r.Response.Patch), `"path":"/spec/jobTemplate/spec/template/spec/containers/0/image","value":"`+im("app", ":1.4@"+moved)) {
		t.Fatalf("cronjob patch %s", r.Response.Patch)
	}
	m := mf.scrape()
	if m[`custody_admission_mutations_total{reason="mutated",result="allowed"}`] != 2 || m[`custody_admission_mutations_total{reason="no_images",result="allowed"}`] != 1 {
		t.Fatalf("mutation metrics %v", m)
	}
}

// TestMutateRefuses: /mutate fails closed, naming the registry and the
// reason: a tag the registry does not have, a registry that is down, one
// that hangs (answered within the deadline), one that answers something
// that is not a digest, one not allowed, a reference that does not parse,
// and more distinct tags than the cap (no registry asked). In audit mode
// such a request is admitted unpinned.
func TestMutateRefuses(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	var answer atomic.Pointer[string]
	mf := newMutateFixture(t, func(c *Config) {
		c.Timeout = 500 * time.Millisecond
		c.MaxImages = 4
		c.Modes = Modes{Namespaces: map[string]Mode{"canary": ModeAudit}}
		c.Namespaces = map[string]string{"*": "dev"}
		real := c.Resolver
		c.Resolver = ResolverFunc(func(ctx context.Context, tag Tag) (string, error) {
			switch tag.Repository {
			case "hangs":
				<-hang // ignores ctx
			case "garbage":
				return *answer.Load(), nil
			}
			return real.Resolve(ctx, tag)
		})
		c.Registries = append(c.Registries, "127.0.0.1:1")
	})
	reg := mf.reg.host
	im := mf.reg.image
	garbage := "sha256:../../etc\n\"x\""
	answer.Store(&garbage)
	mf.reg.push(t, "app", "1.4")
	cases := []struct{ name, image, want string }{
		{"unknown tag", im("app", ":9.9"), `container c0 image "` + im("app", ":9.9") + `": couldn't pin its tag to a digest: registry ` + reg},
		{"registry down", "127.0.0.1:1/org/app:1.4", `couldn't pin its tag to a digest: registry 127.0.0.1:1`},
		{"registry hangs", reg + "/hangs:1", "registry " + reg + ": no answer within the deadline (timeout 500ms)"},
		{"not a digest", reg + "/garbage:1", `registry ` + reg + `: resolving tag 1 gave "sha256:../../etc\n\"x\"", not a sha256 digest`},
		{"registry not allowed", "evil.example/org/app:1.4", "registry evil.example is not one custody admission resolves tags at"},
		{"docker hub not allowed", "nginx", "registry index.docker.io is not one"},
		{"not a reference", "UPPER/Case:1", "not an image reference"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, r := mf.postTo("/mutate", review(t, "x", "shop", podKind, pod(tc.image)))
			if r.Response.Allowed || r.Response.Patch != nil {
				t.Fatalf("admitted: %+v", r.Response)
			}
			if msg := r.Response.Result.Message; !strings.Contains(msg, tc.want) {
				t.Fatalf("message %q, want %q", msg, tc.want)
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("not answered")
			}
		})
	}

	// thousands of containers: more distinct tags than the cap is denied
	// before any registry is asked; the same tag thousands of times is
	// one resolution
	before := mf.resolves.Load()
	many := make([]string, 3000)
	for i := range many {
		many[i] = im("app", fmt.Sprintf(":%d", i))
	}
	_, r := mf.postTo("/mutate", review(t, "cap", "shop", podKind, pod(many...)))
	if r.Response.Allowed || !strings.Contains(r.Response.Result.Message, "the object names 3000 distinct image tags, more than the 4") {
		t.Fatalf("cap: %+v", r.Response)
	}
	if mf.resolves.Load() != before {
		t.Fatal("a registry was asked for a request over the cap")
	}
	for i := range many {
		many[i] = im("app", ":1.4")
	}
	_, r = mf.postTo("/mutate", review(t, "same", "shop", podKind, pod(many...)))
	if !r.Response.Allowed || mf.resolves.Load() != before+1 || bytes.Count(r.Response.Patch, []byte(`"op":"replace"`)) != 3000 {
		t.Fatalf("same tag 3000 times: %d resolutions, allowed %v", mf.resolves.Load()-before, r.Response.Allowed)
	}

	// audit mode: admitted unpinned, annotated, counted
	_, r = mf.postTo("/mutate", review(t, "aud", "canary", podKind, pod(im("app", ":9.9"))))
	if !r.Response.Allowed || r.Response.Patch != nil || r.Response.AuditAnnotations["mode"] != "audit" || len(r.Response.Warnings) != 0 {
		t.Fatalf("audit: %+v", r.Response)
	}
	if n := mf.scrape()[`custody_admission_would_deny_total{environment="dev",mode="audit",reason="undecided"}`]; n != 1 {
		t.Fatalf("would_deny %v", n)
	}
}

// TestMutateMalformed: /mutate reads reviews as /validate does: not JSON
// is 400, over the size limit 413, a duplicate member or an image field
// custody does not know is denied; DELETE is admitted untouched. Without
// a resolver /mutate is not served.
func TestMutateMalformed(t *testing.T) {
	mf := newMutateFixture(t, nil)
	post := func(body []byte) (int, *admissionv1.AdmissionReview) {
		resp, err := mf.srv.Client().Post(mf.srv.URL+"/mutate", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return mf.decode(resp)
	}
	if code, _ := post([]byte("nope")); code != http.StatusBadRequest {
		t.Fatalf("not JSON: %d", code)
	}
	if code, _ := post(bytes.Repeat([]byte(" "), MaxReviewBytes+1)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", code)
	}
	dup := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"d","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{"containers":[{"name":"a","image":"x/a:1","image":"x/b:1"}]}}}}`)
	if _, r := post(dup); r.Response.Allowed || !strings.Contains(r.Response.Result.Message, "duplicate") {
		t.Fatalf("duplicate member: %+v", r.Response)
	}
	hidden := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"h","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{"containers":[],"sidecar":{"image":"x/a:1"}}}}}`)
	if _, r := post(hidden); r.Response.Allowed {
		t.Fatalf("unknown image field: %+v", r.Response)
	}
	del := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"del","operation":"DELETE","kind":{"group":"","version":"v1","kind":"Pod"}}}`)
	if _, r := post(del); !r.Response.Allowed || r.Response.Patch != nil {
		t.Fatalf("delete: %+v", r.Response)
	}

	plain := newFixture(t, nil)
	resp, err := plain.srv.Client().Post(plain.srv.URL+"/mutate", "application/json", bytes.NewReader(del))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/mutate without a resolver: %d", resp.StatusCode)
	}
}
