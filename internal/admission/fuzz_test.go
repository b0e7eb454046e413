package admission

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
)

// FuzzReview feeds untrusted bytes through ParseReview, Images and Review:
// nothing panics, every answer echoes the uid, and an allow only ever
// happens for a review whose images all parse as sha256 digests with
// evidence (there is none here, so only image-free or DELETE/CONNECT
// requests may be allowed).
func FuzzReview(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add([]byte(strings.ReplaceAll(string(b), "GOOD_DIGEST", goodDigest)))
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","kind":{"group":"batch","version":"v1","kind":"CronJob"},"object":{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"a@sha256:` + strings.Repeat("0", 64) + `"}]}}}}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{"volumes":[{"name":"v","image":{"reference":"r:1"}}]}}}}`))
	f.Add([]byte(`{}`))
	p, err := policy.Parse([]byte("apiVersion: custody.dev/policy/v1\nenvironment: prod\ntrustedBuilders: [https://b]\nsigners: [{keyId: " + strings.Repeat("ab", 32) + "}]\n"))
	if err != nil {
		f.Fatal(err)
	}
	tm, err := gate.KeyMaterial()
	if err != nil {
		f.Fatal(err)
	}
	w, err := New(Config{Policies: map[string]*policy.Policy{"prod": p}, Namespaces: map[string]string{"*": "prod"},
		Source: SourceFunc(func(context.Context, string) ([]gate.Bundle, error) { return nil, nil }), Trust: tm, Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReview(b)
		if err != nil {
			return
		}
		imgs, ierr := Images(r)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp := w.Review(ctx, r)
		if !resp.Allowed && strings.Contains(resp.Result.Message, "deadline") {
			t.Fatalf("a decision with nothing to wait for timed out: %s", resp.Result.Message)
		}
		if string(resp.UID) != r.UID {
			t.Fatalf("uid %q not echoed (%q)", r.UID, resp.UID)
		}
		if !resp.Allowed {
			if resp.Result == nil || resp.Result.Message == "" || len(resp.Result.Message) > MaxMessageBytes {
				t.Fatalf("denial without a sensible message: %+v", resp.Result)
			}
			return
		}
		op := r.Operation
		if op == "DELETE" || op == "CONNECT" {
			return
		}
		if ierr != nil || len(imgs) != 0 {
			t.Fatalf("allowed %s with images %+v (err %v)", op, imgs, ierr)
		}
	})
}

// FuzzParseDigest: a digest is only ever returned for NAME@sha256:64hex.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"nginx", "nginx:1", "a@sha256:" + strings.Repeat("a", 64), "@sha256:", "a@sha512:x", "a@b@sha256:" + strings.Repeat("0", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		dg, problem := ParseDigest(ref)
		if (dg == "") == (problem == "") {
			t.Fatalf("%q: digest %q problem %q", ref, dg, problem)
		}
		if dg != "" && (!strings.HasSuffix(ref, "@"+dg) || !isLowerHex(strings.TrimPrefix(dg, "sha256:"), 64) || len(ref) == len(dg)+1) {
			t.Fatalf("%q: digest %q", ref, dg)
		}
	})
}

// FuzzImagePointers: for every review whose object Images reads, the JSON
// pointer /mutate would patch for each image leads, in the object as the
// API server decodes it, to exactly that image's reference, so a patch
// can only ever replace an image reference.
func FuzzImagePointers(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, fn := range files {
		if b, err := os.ReadFile(fn); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","kind":{"group":"batch","version":"v1","kind":"CronJob"},"object":{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[null,{"image":"b:1"}],"containers":[{"name":"a","image":"a:1"}]}}}}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{"ephemeralContainers":[{"image":"e:1"}],"volumes":[{"name":"v","image":{"reference":"r:1"}},{"name":"w"}]}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReview(b)
		if err != nil || r.Object == nil {
			return
		}
		imgs, err := images(r, true)
		if err != nil {
			return
		}
		var doc any
		if err := json.Unmarshal(r.Object, &doc); err != nil {
			t.Fatalf("Images read an object encoding/json refuses: %v", err)
		}
		for _, im := range imgs {
			v, ok := atPointer(doc, im.Pointer)
			if im.Ref == "" && !ok {
				continue // a null container or one without an image: nothing to patch
			}
			if s, _ := v.(string); !ok || s != im.Ref {
				t.Fatalf("pointer %q of %s leads to %v (%v), want %q", im.Pointer, im.Where, v, ok, im.Ref)
			}
		}
	})
}

// atPointer resolves a JSON pointer of object members and array indices
// (no escapes) in doc.
func atPointer(doc any, ptr string) (any, bool) {
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	for _, p := range strings.Split(ptr[1:], "/") {
		switch v := doc.(type) {
		case map[string]any:
			var ok bool
			if doc, ok = v[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			doc = v[i]
		default:
			return nil, false
		}
	}
	return doc, true
}
