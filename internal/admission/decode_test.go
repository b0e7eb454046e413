package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"
)

// The differential tests: ParseReview and Images (decode.go) against the
// typed decoders they replaced (typed_test.go), on every input. They must
// agree on what is JSON (json.Valid), on the request's fields, on the
// images found (same references, same places, same order) and on the
// decision, except where decode.go documents that it differs:
//
//   - D1: the typed decoders refused a field of the wrong type that can
//     hold no image (and that decode.go does not read). Then decode.go's
//     images must still pass the typed path's generic check (every
//     "image" string under spec is one of them) and, when the typed
//     decoder could go on past the type error, equal the images it found.
//   - D2: decode.go refuses a duplicate member name the typed decoders let
//     pass (stricter).
//   - D3: a ReplicationController without a template: the typed path
//     returned no images without checking the rest of its spec; decode.go
//     checks it (stricter).
//   - D4: decode.go refuses an object with more than maxImages
//     containers and image volumes, or members "image" under spec
//     (stricter; the typed decoders had no bound).

var diffFixture *fixture

func differentialSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob("testdata/*.json")
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b, []byte(strings.ReplaceAll(string(b), "GOOD_DIGEST", goodDigest)))
	}
	t := &testing.T{}
	good, bad := "ghcr.io/org/app@"+goodDigest, "ghcr.io/org/app@"+otherDigest
	spec := corev1.PodSpec{
		InitContainers:      []corev1.Container{{Name: "init", Image: good}},
		Containers:          []corev1.Container{{Name: "app", Image: good, Resources: corev1.ResourceRequirements{}}, {Name: "side", Image: "app:v1@" + goodDigest}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: bad}}},
		Volumes:             []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: good}}}},
	}
	tmpl := corev1.PodTemplateSpec{Spec: spec}
	seeds = append(seeds,
		review(t, "p", "shop", podKind, &corev1.Pod{Spec: spec}),
		review(t, "p", "dev-ns", podKind, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "ghcr.io/org/app@" + noSBOM}}}}),
		review(t, "d", "shop", deploymentKind, &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl}}),
		review(t, "s", "shop", metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: tmpl}}),
		review(t, "ds", "shop", metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl}}),
		review(t, "rs", "shop", metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: tmpl}}),
		review(t, "rc", "shop", metav1.GroupVersionKind{Version: "v1", Kind: "ReplicationController"}, &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &tmpl}}),
		review(t, "j", "shop", metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, &batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl}}),
		review(t, "cj", "shop", cronJobKind, &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}),
	)
	const head = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"shop","kind":{"group":"","version":"v1","kind":"Pod"},"object":`
	g := `"` + good + `"`
	for _, obj := range []string{
		`{"spec":{"containers":[{"name":"a","image":` + g + `}]}}`,
		`{"spec":{"containers":[null,{"image":` + g + `}]}}`,
		`{"spec":{"containers":null,"initContainers":[{"name":null,"image":null}]}}`,
		`{"spec":{"containers":[{"image":5}]}}`,
		`{"spec":{"containers":[{"name":5,"image":` + g + `}]}}`,
		`{"spec":{"containers":{"image":` + g + `}}}`,
		`{"spec":{"containers":[{"image":` + g + `,"image":` + g + `}]}}`,
		`{"spec":{"containers":[{"image":` + g + `}],"containers":[]}}`,
		`{"spec":{"containers":[{"image":` + g + `,"x":1,"x":2}]}}`,
		`{"spec":{"containers":[{"image":` + g + `}],"restartPolicy":5}}`,
		`{"spec":{"containers":[{"image":` + g + `,"resources":{"limits":{"cpu":"lots"}}}]}}`,
		`{"spec":{"containers":[{"im\u0061ge":` + g + `}]}}`,
		`{"spec":{"containers":[{"Image":"evil:1"}]}}`,
		`{"spec":{"containers":[{"image":` + g + `}],"x":{"y":[{"image":"evil:1"}]}}}`,
		`{"spec":{"containers":[{"image":` + g + `}],"x":{"y":[{"image":` + g + `}]}}}`,
		`{"spec":{"volumes":[{"name":"v","image":{"reference":"r:1"}},{"name":"w","image":null},null,{"image":{}}]}}`,
		`{"spec":{"volumes":[{"name":"v","image":"r:1"}]}}`,
		`{"spec":{"volumes":[{"name":"v","image":{"reference":"r:1","image":"evil:1"}}]}}`,
		`{"spec":null}`, `{"spec":5}`, `{}`, `[]`, `"pod"`, `5`, `null`,
		`{"metadata":{"annotations":{"image":"x:1"}},"status":{"image":"y"},"spec":{}}`,
		`{"spec":{"containers":[{"image":"a\u00e9b@` + goodDigest + `"},{"image":"\ud800x"},{"image":"caf` + "\xff" + `"}]}}`,
	} {
		seeds = append(seeds, []byte(head+obj+`}}`))
	}
	seeds = append(seeds,
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"version":"v1","kind":"ReplicationController"},"object":{"spec":{"x":{"image":"evil:1"}}}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","kind":{"version":"v1","kind":"Pod"},"object":{"spec":{"a":1,"a":2}}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","dryRun":"yes","operation":"CREATE","kind":{"version":"v1","kind":"Pod"},"object":{}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","uid":"v"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","Request":{"uid":"u"}}`),
		[]byte(` {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CONNECT"}} `),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}} x`),
		[]byte(`{"a":-0.5e+3,"b":[true,false,null],"c":"\"\\\/\b\f\n\r\t\u00AF"}`),
		[]byte(`{"a":01}`), []byte(`{"a":1.}`), []byte(`{"a":-}`), []byte(`{"a":"\x"}`), []byte("{\"a\":\"\x01\"}"), []byte(`{"a" 1}`), []byte(`{"a":1,}`), []byte(`[1,]`), []byte(``), []byte(` `), []byte(`{"a":tru}`),
		[]byte(strings.Repeat("[", 10000)+strings.Repeat("]", 10000)),
		[]byte(strings.Repeat("[", 10001)+strings.Repeat("]", 10001)),
	)
	return seeds
}

// checkDifferential compares the new decoders with the typed ones on b.
func checkDifferential(t *testing.T, b []byte) {
	newReq, newErr := ParseReview(b)
	if errors.Is(newErr, errNotJSON) != !json.Valid(b) {
		t.Fatalf("not JSON: ParseReview says %v, json.Valid %v", newErr, json.Valid(b))
	}
	if !json.Valid(b) {
		return
	}
	old, oldErr := typedParseReview(b)
	switch {
	case oldErr == nil && newErr != nil:
		if !isDup(newErr) {
			t.Fatalf("typed decoder read the review, ParseReview refused it: %v", newErr)
		}
		return // D2
	case oldErr != nil && newErr == nil:
		if isDup(oldErr) || !strings.Contains(oldErr.Error(), "json: ") {
			t.Fatalf("ParseReview read the review, typed decoder refused it for a reason not a type error: %v", oldErr)
		}
		return // D1: a field of the request the webhook does not read
	case oldErr != nil:
		// Both refuse; the uid is echoed when the typed decoder gave a
		// request (a refused duplicate or value, not a type error).
		if old != nil && old.Request != nil && newReq != nil && !isDup(newErr) && string(old.Request.UID) != newReq.UID {
			t.Fatalf("uid %q, want %q", newReq.UID, old.Request.UID)
		}
		return
	}
	o := old.Request
	want := &Request{UID: string(o.UID), Kind: GVK{o.Kind.Group, o.Kind.Version, o.Kind.Kind}, Namespace: o.Namespace, Name: o.Name,
		Operation: string(o.Operation), User: o.UserInfo.Username, Object: o.Object.Raw}
	if !reflect.DeepEqual(newReq, want) {
		t.Fatalf("request %+v, want %+v", newReq, want)
	}
	oldImgs, oldIErr := typedImages(o)
	newImgs, newIErr := Images(newReq)
	divergent := false
	switch {
	case oldIErr == nil && newIErr == nil:
		if !reflect.DeepEqual(oldImgs, newImgs) {
			t.Fatalf("images %+v, want %+v", newImgs, oldImgs)
		}
	case oldIErr == nil:
		rcWithoutTemplate := want.Kind == GVK{"", "v1", "ReplicationController"} && len(oldImgs) == 0 &&
			strings.Contains(newIErr.Error(), "does not know how to check")
		tooMany := strings.Contains(newIErr.Error(), fmt.Sprintf("more than %d ", maxImages))
		if !isDup(newIErr) && !rcWithoutTemplate && !tooMany {
			t.Fatalf("typed decoder found images %+v, Images refused the object: %v", oldImgs, newIErr)
		}
		divergent = true // D2, D3, D4
	case newIErr == nil:
		msg := oldIErr.Error()
		if isDup(oldIErr) || !strings.Contains(msg, "object: ") || strings.Contains(msg, "does not know how to check") {
			t.Fatalf("Images found %+v, typed decoder refused the object for a reason not a type error: %v", newImgs, oldIErr)
		}
		if err := checkAllSeen(want.Kind, want.Object, newImgs); err != nil {
			t.Fatalf("Images found %+v, but the generic walk: %v (typed: %v)", newImgs, err, oldIErr)
		}
		if strings.Contains(msg, "cannot unmarshal") {
			if partial := partialImages(want.Kind, want.Object); !reflect.DeepEqual(partial, newImgs) {
				t.Fatalf("images %+v, typed decoder past its type error (%v) found %+v", newImgs, oldIErr, partial)
			}
		}
		divergent = true // D1
	}
	if divergent {
		return
	}
	// The decision, old by an oracle from the typed decoders' answers, new
	// by the webhook on the new decoders' request.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := diffFixture.wh.Review(ctx, newReq)
	if string(resp.UID) != want.UID {
		t.Fatalf("uid %q not echoed (%q)", want.UID, resp.UID)
	}
	if wantAllowed := oracle(want, oldImgs, oldIErr); resp.Allowed != wantAllowed {
		t.Fatalf("allowed %v, want %v (images %+v, err %v): %+v", resp.Allowed, wantAllowed, oldImgs, oldIErr, resp.Result)
	}
}

// oracle is what the fixture's webhook decides about a request whose
// images the typed decoder found.
func oracle(req *Request, imgs []Image, imgErr error) bool {
	switch req.Operation {
	case "DELETE", "CONNECT":
		return true
	case "CREATE", "UPDATE":
	default:
		return false
	}
	if imgErr != nil {
		return false
	}
	env := diffFixture.wh.Environment(req.Namespace)
	for _, im := range imgs {
		if im.Digest != goodDigest && !(env == "dev" && im.Digest == noSBOM) {
			return false
		}
	}
	return true
}

func isDup(err error) bool { return err != nil && strings.Contains(err.Error(), "duplicate field") }

// partialImages decodes raw as kind without strictness, ignoring errors:
// encoding/json goes on past a field of the wrong type.
func partialImages(k GVK, raw []byte) []Image {
	var spec *corev1.PodSpec
	switch k {
	case GVK{"", "v1", "Pod"}:
		var o corev1.Pod
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
		spec = &o.Spec
	case GVK{"", "v1", "ReplicationController"}:
		var o corev1.ReplicationController
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
		if o.Spec.Template == nil {
			return nil
		}
		spec = &o.Spec.Template.Spec
	case GVK{"apps", "v1", "Deployment"}, GVK{"apps", "v1", "StatefulSet"}, GVK{"apps", "v1", "DaemonSet"}, GVK{"apps", "v1", "ReplicaSet"}:
		var o struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
		spec = &o.Spec.Template.Spec
	case GVK{"batch", "v1", "Job"}:
		var o batchv1.Job
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
		spec = &o.Spec.Template.Spec
	case GVK{"batch", "v1", "CronJob"}:
		var o batchv1.CronJob
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &o)
		spec = &o.Spec.JobTemplate.Spec.Template.Spec
	default:
		return nil
	}
	return podImages(spec)
}

func setupDifferential(tb testing.TB) {
	if diffFixture == nil {
		diffFixture = newFixture(&testing.T{}, nil)
	}
}

func TestDecodeDifferential(t *testing.T) {
	setupDifferential(t)
	for _, b := range differentialSeeds(t) {
		name := string(b)
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) { checkDifferential(t, b) })
	}
}

// FuzzDecodeDifferential: see checkDifferential.
func FuzzDecodeDifferential(f *testing.F) {
	setupDifferential(f)
	for _, b := range differentialSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkDifferential)
}

// Images must see every image the typed decoder sees in a real object:
// the seeds include every workload kind with every container kind.
func TestImagesEveryKind(t *testing.T) {
	seen := 0
	for _, b := range differentialSeeds(t) {
		r, err := ParseReview(b)
		if err != nil || r.Kind.Kind == "" || !bytes.Contains(r.Object, []byte(`"dbg"`)) {
			continue
		}
		imgs, err := Images(r)
		if err != nil {
			t.Fatalf("%s: %v", r.Kind.Kind, err)
		}
		var where []string
		for _, im := range imgs {
			where = append(where, im.Where)
		}
		if got := strings.Join(where, ","); got != "init container init,container app,container side,ephemeral container dbg,image volume data" {
			t.Errorf("%s: %s", r.Kind.Kind, got)
		}
		seen++
	}
	if seen != 8 {
		t.Fatalf("%d kinds checked, want 8", seen)
	}
}

// appendReview writes what json.Marshal writes.
func FuzzAppendReview(f *testing.F) {
	for _, s := range []string{"", "bench", "3c2b1a09-8f7e", "<&>\"\\\x00\x1f\x7f\u2028\u2029é\xff", "\b\f\n\r\t"} {
		f.Add(s, "prod", "sha256:abc", true)
		f.Add(s, s, s, false)
	}
	f.Fuzz(func(t *testing.T, uid, env, pol string, allowed bool) {
		for _, resp := range []*admissionv1.AdmissionResponse{
			{UID: types.UID(uid), Allowed: allowed},
			{UID: types.UID(uid), Allowed: allowed, AuditAnnotations: map[string]string{"environment": env, "policy": pol}},
			{UID: types.UID(uid), Allowed: allowed, AuditAnnotations: map[string]string{env: pol, pol: env, uid: env}},
			deny(types.UID(uid), env, pol),
		} {
			want, err := json.Marshal(&admissionv1.AdmissionReview{
				TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp})
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendReview([]byte("x"), resp)
			if err != nil || !bytes.Equal(got[1:], want) || got[0] != 'x' {
				t.Fatalf("appendReview: %s (%v), want %s", got, err, want)
			}
		}
	})
}

// Reading a large review takes time linear in its size: no member name
// list, image list or path is searched once per member.
func TestDecodeLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"version":"v1","kind":"Pod"},"object":{"metadata":{"annotations":{`)
	const n = 50000
	for i := range n {
		fmt.Fprintf(&b, `"k%d":"v",`, i)
	}
	b.WriteString(`"k":"v"}},"spec":{"containers":[`)
	for i := range n {
		fmt.Fprintf(&b, `{"name":"c%d","image":"r%d@%s"},`, i, i, goodDigest)
	}
	b.WriteString(`{"name":"last","image":"r@` + goodDigest + `"}],"x":[`)
	for i := range n {
		fmt.Fprintf(&b, `{"image":"r%d@%s"},`, i, goodDigest)
	}
	b.WriteString(`{}]}}}}`)
	start := time.Now()
	r, err := ParseReview([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Images(r)
	if err != nil || len(imgs) != n+1 {
		t.Fatalf("%d images, %v", len(imgs), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d-byte review read in %s", b.Len(), d)
	}
}
