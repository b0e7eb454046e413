package admission

import (
	"errors"
	"fmt"
	"strings"
)

// MaxReviewBytes bounds the AdmissionReview body the webhook reads. The API
// server's own request limit is 3 MiB, and an UPDATE carries the object
// twice.
const MaxReviewBytes = 8 << 20

// ErrMalformed is wrapped by every error ParseReview and Images return: the
// review or its object is not something the webhook can decide on, so the
// request is denied.
var ErrMalformed = errors.New("malformed admission review")

// Image is one image reference a workload would run.
type Image struct {
	// Ref is the reference as written in the object.
	Ref string
	// Where says which container or volume names it, for messages
	// ("container web", "init container setup", "image volume data").
	Where string
	// Digest is "sha256:HEX" when Ref names a sha256 digest, else empty.
	Digest string
	// Problem says why Ref is not acceptable when Digest is empty.
	Problem string
	// Pointer is the JSON pointer (RFC 6901) of Ref in the object
	// ("/spec/containers/0/image"); set for /mutate only.
	Pointer string
}

func gvk(group, version, kind string) string {
	if group == "" {
		return version + "/" + kind
	}
	return group + "/" + version + "/" + kind
}

func newImage(ref, where string) Image {
	im := Image{Ref: ref, Where: where}
	im.Digest, im.Problem = ParseDigest(ref)
	return im
}

// ParseDigest returns the "sha256:HEX" digest a reference pins
// (NAME[:TAG]@sha256:HEX), or why it does not pin one.
func ParseDigest(ref string) (digest, problem string) {
	if ref == "" {
		return "", "no image given"
	}
	if strings.ContainsAny(ref, " \t\r\n") {
		return "", "the reference contains white space"
	}
	name, dg, ok := cutLast(ref, "@")
	if !ok {
		return "", "it is not referenced by digest (a tag can be moved to other content); use NAME@sha256:HEX"
	}
	if name == "" {
		return "", "the reference has no repository name before @"
	}
	alg, hex, _ := strings.Cut(dg, ":")
	if alg != "sha256" {
		return "", fmt.Sprintf("digest algorithm %q: custody checks sha256 digests; use NAME@sha256:HEX", alg)
	}
	if !isLowerHex(hex, 64) {
		return "", "the digest is not 64 lowercase hex digits; use NAME@sha256:HEX"
	}
	return dg, ""
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
