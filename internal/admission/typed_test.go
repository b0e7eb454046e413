package admission

// The typed decoders that decode.go replaced, kept as the reference of the
// differential tests (decode_test.go): ParseReview and Images as they were
// before, renamed typedParseReview and typedImages.

import (
	"fmt"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
)

// ParseReview parses an AdmissionReview v1 request from untrusted bytes. It
// decodes as the API server does (case-sensitive field names), refuses
// duplicate fields, another apiVersion or kind, a review without a request
// and a request without a uid. The review is returned, when it decoded at all,
// even with an error, so that the caller can echo its uid.
func typedParseReview(b []byte) (*admissionv1.AdmissionReview, error) {
	var r admissionv1.AdmissionReview
	strict, err := kjson.UnmarshalStrict(b, &r, kjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(strict) > 0 {
		return &r, fmt.Errorf("%w: %v", ErrMalformed, strict[0])
	}
	if r.APIVersion != admissionv1.SchemeGroupVersion.String() || r.Kind != "AdmissionReview" {
		return &r, fmt.Errorf("%w: apiVersion %q kind %q, want admission.k8s.io/v1 AdmissionReview", ErrMalformed, r.APIVersion, r.Kind)
	}
	if r.Request == nil {
		return &r, fmt.Errorf("%w: no request", ErrMalformed)
	}
	if r.Request.UID == "" {
		return &r, fmt.Errorf("%w: request has no uid", ErrMalformed)
	}
	return &r, nil
}

// Images returns every image the request's object would run: containers,
// init containers, ephemeral containers and image volumes of a Pod, or of
// the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
// ReplicationController, Job or CronJob. Any other kind, an object that does
// not decode, or an object with an image field custody does not know is an
// error wrapping ErrMalformed (the request is denied).
func typedImages(req *admissionv1.AdmissionRequest) ([]Image, error) {
	raw := req.Object.Raw
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: request has no object", ErrMalformed)
	}
	var spec *corev1.PodSpec
	k := req.Kind
	switch {
	case k.Group == "" && k.Version == "v1" && k.Kind == "Pod":
		var o corev1.Pod
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec
	case k.Group == "" && k.Version == "v1" && k.Kind == "ReplicationController":
		var o corev1.ReplicationController
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		if o.Spec.Template == nil {
			return nil, nil
		}
		spec = &o.Spec.Template.Spec
	case k.Group == "apps" && k.Version == "v1" && k.Kind == "Deployment":
		var o appsv1.Deployment
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case k.Group == "apps" && k.Version == "v1" && k.Kind == "StatefulSet":
		var o appsv1.StatefulSet
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case k.Group == "apps" && k.Version == "v1" && k.Kind == "DaemonSet":
		var o appsv1.DaemonSet
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case k.Group == "apps" && k.Version == "v1" && k.Kind == "ReplicaSet":
		var o appsv1.ReplicaSet
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case k.Group == "batch" && k.Version == "v1" && k.Kind == "Job":
		var o batchv1.Job
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case k.Group == "batch" && k.Version == "v1" && k.Kind == "CronJob":
		var o batchv1.CronJob
		if err := decodeObject(raw, &o); err != nil {
			return nil, err
		}
		spec = &o.Spec.JobTemplate.Spec.Template.Spec
	default:
		return nil, fmt.Errorf("%w: kind %s is not one custody admission checks (Pod, ReplicationController, apps/v1 Deployment, StatefulSet, DaemonSet, ReplicaSet, batch/v1 Job, CronJob)", ErrMalformed, gvk(k.Group, k.Version, k.Kind))
	}
	imgs := podImages(spec)
	if err := checkAllSeen(GVK{k.Group, k.Version, k.Kind}, raw, imgs); err != nil {
		return nil, err
	}
	return imgs, nil
}

// decodeObject decodes an object as the API server does (case-sensitive)
// and refuses duplicate fields, whose meaning decoders disagree on.
// Unknown fields are allowed: newer API servers add them.
func decodeObject(raw []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(raw, v, kjson.DisallowDuplicateFields)
	if err != nil {
		return fmt.Errorf("%w: object: %v", ErrMalformed, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%w: object: %v", ErrMalformed, strict[0])
	}
	return nil
}

func podImages(s *corev1.PodSpec) []Image {
	var out []Image
	for _, c := range s.InitContainers {
		out = append(out, newImage(c.Image, "init container "+c.Name))
	}
	for _, c := range s.Containers {
		out = append(out, newImage(c.Image, "container "+c.Name))
	}
	for _, c := range s.EphemeralContainers {
		out = append(out, newImage(c.Image, "ephemeral container "+c.Name))
	}
	for _, v := range s.Volumes {
		if v.Image != nil {
			out = append(out, newImage(v.Image.Reference, "image volume "+v.Name))
		}
	}
	return out
}

// checkAllSeen fails closed against a typed decoder that misses images: it
// walks the object's spec generically and requires every string field named
// "image" to be one of the images found. A field the typed API does not
// know (a newer container kind) is refused rather than admitted unchecked.
//
// A Ceph RBD volume's "image" (the pod spec's volumes[i].rbd.image) names
// a block device image, not a container image: it is not checked.
func checkAllSeen(kind GVK, raw []byte, imgs []Image) error {
	var generic map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &generic); err != nil {
		return fmt.Errorf("%w: object: %v", ErrMalformed, err)
	}
	exempt := rbdImagePaths(kind, generic)
	seen := map[string]bool{}
	for _, im := range imgs {
		seen[im.Ref] = true
	}
	var unknown []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "image" && !seen[s] && !exempt[path+"."+k] {
					unknown = append(unknown, path+"."+k)
				}
				walk(x, path+"."+k)
			}
		case []any:
			for i, x := range v {
				walk(x, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(generic["spec"], "spec")
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%w: object has an image at %s that custody does not know how to check", ErrMalformed, unknown[0])
	}
	return nil
}

// podSpecPaths is where each kind custody checks holds its pod spec.
var podSpecPaths = map[GVK][]string{
	{"", "v1", "Pod"}:                   {"spec"},
	{"", "v1", "ReplicationController"}: {"spec", "template", "spec"},
	{"apps", "v1", "Deployment"}:        {"spec", "template", "spec"},
	{"apps", "v1", "ReplicaSet"}:        {"spec", "template", "spec"},
	{"apps", "v1", "StatefulSet"}:       {"spec", "template", "spec"},
	{"apps", "v1", "DaemonSet"}:         {"spec", "template", "spec"},
	{"batch", "v1", "Job"}:              {"spec", "template", "spec"},
	{"batch", "v1", "CronJob"}:          {"spec", "jobTemplate", "spec", "template", "spec"},
}

// rbdImagePaths are the paths (as checkAllSeen spells them) of the
// "image" members of the RBD volumes of the object's pod spec.
func rbdImagePaths(kind GVK, generic map[string]any) map[string]bool {
	path, ok := podSpecPaths[kind]
	if !ok {
		return nil
	}
	var v any = generic
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	spec, _ := v.(map[string]any)
	vols, _ := spec["volumes"].([]any)
	out := map[string]bool{}
	for i, vol := range vols {
		if m, ok := vol.(map[string]any); ok {
			if _, ok := m["rbd"].(map[string]any); ok {
				out[fmt.Sprintf("%s.volumes[%d].rbd.image", strings.Join(path, "."), i)] = true
			}
		}
	}
	return out
}
