package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Reviews crafted to get an image past the webhook: each must be denied.
func TestBypassAttempts(t *testing.T) {
	setupDifferential(t)
	g := `"ghcr.io/org/app@` + goodDigest + `"`
	const (
		pod  = `{"group":"","version":"v1","kind":"Pod"}`
		dep  = `{"group":"apps","version":"v1","kind":"Deployment"}`
		job  = `{"group":"batch","version":"v1","kind":"Job"}`
		cron = `{"group":"batch","version":"v1","kind":"CronJob"}`
	)
	rev := func(kind, extra, obj string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"shop",` +
			extra + `"kind":` + kind + `,"object":` + obj + `}}`
	}
	for name, body := range map[string]string{
		"escaped image":             rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"ephemeralContainers":[{"im\u0061ge":"evil:1"}]}}`),
		"escaped containers":        rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"cont\u0061iners":[{"image":"evil:1"}]}}`),
		"escaped reference":         rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"volumes":[{"name":"v","image":{"refer\u0065nce":"evil:1"}}]}}`),
		"case of containers":        rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"Containers":[{"image":"evil:1"}]}}`),
		"duplicate spec":            rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}]},"spec":{"containers":[{"image":"evil:1"}]}}`),
		"duplicate escaped":         rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"c\u006fntainers":[{"image":"evil:1"}]}}`),
		"duplicate template":        rev(dep, "", `{"spec":{"template":{"spec":{"containers":[{"image":`+g+`}]}},"template":{"spec":{"containers":[{"image":"evil:1"}]}}}}`),
		"duplicate object":          rev(pod, `"object":{"spec":{"containers":[{"image":`+g+`}]}},`, `{"spec":{"containers":[{"image":"evil:1"}]}}`),
		"duplicate kind":            rev(dep, `"kind":`+pod+`,`, `{"spec":{"containers":[{"image":`+g+`}],"template":{"spec":{"containers":[{"image":"evil:1"}]}}}}`),
		"object says Deployment":    rev(pod, "", `{"kind":"Deployment","apiVersion":"apps/v1","spec":{"template":{"spec":{"containers":[{"image":"evil:1"}]}}}}`),
		"object says Pod":           rev(dep, "", `{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"image":"evil:1"}]}}`),
		"Job with a jobTemplate":    rev(job, "", `{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"evil:1"}]}}}}}}`),
		"CronJob":                   rev(cron, "", `{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":`+g+`}],"initContainers":[{"image":"evil:1"}]}}}}}}`),
		"ephemeralcontainers":       rev(pod, `"subResource":"ephemeralcontainers","operation":"UPDATE",`, `{"spec":{"containers":[{"image":`+g+`}],"ephemeralContainers":[{"name":"d","image":"busybox"}]}}`),
		"image volume":              rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"volumes":[{"name":"v","image":{"reference":"evil:1"}}]}}`),
		"NUL after the digest":      rev(pod, "", `{"spec":{"containers":[{"image":"ghcr.io/org/app@`+goodDigest+`\u0000"}]}}`),
		"surrogate in the digest":   rev(pod, "", `{"spec":{"containers":[{"image":"ghcr.io/org/app@`+goodDigest+`\ud800"}]}}`),
		"invalid UTF-8 in the name": rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"x":[{"imag`+"\xff"+`":"evil:1","image":"evil:2"}]}}`),
		"containers true":           rev(pod, "", `{"spec":{"containers":true}}`),
		"container true":            rev(pod, "", `{"spec":{"containers":[true]}}`),
		"nested array":              rev(pod, "", `{"spec":{"containers":[[{"image":"evil:1"}]]}}`),
		"image array":               rev(pod, "", `{"spec":{"containers":[{"image":["evil:1"]}]}}`),
		"volume image string":       rev(pod, "", `{"spec":{"volumes":[{"image":"evil:1"}]}}`),
		"null container":            rev(pod, "", `{"spec":{"containers":[null]}}`),
		"null object":               rev(pod, "", `null`),
		"no object":                 `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"shop","kind":` + pod + `}}`,
		"BOM":                       "\xef\xbb\xbf" + rev(pod, "", `{"spec":{"containers":[{"image":"evil:1"}]}}`),
		"trailing garbage":          rev(pod, "", `{"spec":{"containers":[{"image":"evil:1"}]}}`) + "x",
		"trailing NUL":              rev(pod, "", `{"spec":{"containers":[{"image":"evil:1"}]}}`) + "\x00",
		"deep":                      rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"x":`+strings.Repeat("[", 9990)+`{"image":"evil:1"}`+strings.Repeat("]", 9990)+`}}`),
		"too deep":                  rev(pod, "", `{"spec":{"containers":[{"image":`+g+`}],"x":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}}`),
	} {
		t.Run(name, func(t *testing.T) {
			r, err := ParseReview([]byte(body))
			if err != nil {
				return // denied (or 400)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if resp := diffFixture.wh.Review(ctx, r); resp.Allowed {
				t.Fatalf("allowed")
			}
		})
	}
}

// An object with more containers or "image" members than maxImages is
// refused, without allocating for each: "[{},{},…]" in 8 MiB made the
// webhook allocate gigabytes (and use ~700 MB at once).
func TestImagesBounded(t *testing.T) {
	const head = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"shop","kind":{"version":"v1","kind":"Pod"},"object":{"spec":`
	for _, c := range []struct{ pre, el, post, want string }{
		{`{"containers":[`, `{},`, `{}]}`, "more than 65536 containers"},
		{`{"containers":[`, `null,`, `null]}`, "more than 65536 containers"},
		{`{"initContainers":[{}],"ephemeralContainers":[{}],"volumes":[`, `{"image":{}},`, `{"image":{}}]}`, "more than 65536 containers"},
		{`{"x":[`, `{"image":"a"},`, `{"image":"a"}]}`, `more than 65536 members "image"`},
	} {
		for _, n := range []int{maxImages - 3, maxImages + 1} {
			body := head + c.pre + strings.Repeat(c.el, n-1) + c.post + `}}}`
			r, err := ParseReview([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			imgs, err := Images(r)
			switch {
			case n > maxImages && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s ×%d: %d images, %v", c.el, n, len(imgs), err)
			case n <= maxImages && err != nil && !strings.Contains(err.Error(), "does not know how to check"):
				t.Errorf("%s ×%d: %v", c.el, n, err)
			}
			if n > maxImages && err != nil && strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("not one line: %v", err)
			}
		}
	}
}

// A repeated name is refused whether it repeats one of an object's first
// 16 names (kept in a list) or a later one (kept only in a map), also in
// objects nested in one with many members.
func TestDuplicateManyMembers(t *testing.T) {
	const head = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"version":"v1","kind":"Pod"},"object":{"spec":{"x":{`
	var members []string
	for i := range 40 {
		members = append(members, fmt.Sprintf(`"k%d":{"a":1,"b":2}`, i))
	}
	many := strings.Join(members, ",")
	for _, c := range []struct {
		extra string
		dup   bool
	}{
		{``, false},
		{`,"k3":0`, true},
		{`,"k15":0`, true},
		{`,"k16":0`, true},
		{`,"k39":0`, true},
		{`,"k\u0033\u0039":0`, true},
		{`,"k40":0`, false},
		{`,"k40":{"a":1,"a":2}`, true},
		{`,"a":0,"b":0`, false},
	} {
		r, err := ParseReview([]byte(head + many + c.extra + `}}}}}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Images(r)
		if isDup(err) != c.dup {
			t.Errorf("%s: %v, want duplicate %v", c.extra, err, c.dup)
		}
	}
}

// TestRBDVolume: a Ceph RBD volume's "image" names a block device image in
// the Ceph pool, not a container image, so a pod using one is judged by its
// containers alone; an "image" under an "rbd" member anywhere else is still
// an image custody does not know, and denied.
func TestRBDVolume(t *testing.T) {
	setupDifferential(t)
	g := `"ghcr.io/org/app@` + goodDigest + `"`
	rbd := `{"name":"data","rbd":{"monitors":["10.0.0.1:6789"],"pool":"kube","image":"pvc-0001","user":"admin"}}`
	rev := func(kind, obj string) []byte {
		return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"shop","kind":` +
			kind + `,"object":` + obj + `}}`)
	}
	const pod, dep = `{"group":"","version":"v1","kind":"Pod"}`, `{"group":"apps","version":"v1","kind":"Deployment"}`
	for _, c := range []struct {
		name    string
		body    []byte
		allowed bool
	}{
		{"pod with an RBD volume", rev(pod, `{"spec":{"containers":[{"name":"app","image":`+g+`}],"volumes":[`+rbd+`]}}`), true},
		{"deployment with an RBD volume", rev(dep, `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":`+g+`}],"volumes":[{"name":"x","emptyDir":{}},`+rbd+`]}}}}`), true},
		{"RBD volume, container by tag", rev(pod, `{"spec":{"containers":[{"name":"app","image":"nginx:1"}],"volumes":[`+rbd+`]}}`), false},
		{"rbd outside the volumes", rev(pod, `{"spec":{"containers":[{"name":"app","image":`+g+`}],"x":{"rbd":{"image":"evil:1"}}}}`), false},
		{"rbd in a container", rev(pod, `{"spec":{"containers":[{"name":"app","image":`+g+`,"rbd":{"image":"evil:1"}}]}}`), false},
		{"RBD volume whose image is not a string", rev(pod, `{"spec":{"containers":[{"name":"app","image":`+g+`}],"volumes":[{"name":"d","rbd":{"image":{"reference":"evil:1"}}}]}}`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkDifferential(t, c.body)
			allowed := false
			if r, err := ParseReview(c.body); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp := diffFixture.wh.Review(ctx, r)
				allowed = resp.Allowed
				if allowed != c.allowed && resp.Result != nil {
					t.Logf("result: %s", resp.Result.Message)
				}
			}
			if allowed != c.allowed {
				t.Fatalf("allowed %v, want %v", allowed, c.allowed)
			}
		})
	}
}
