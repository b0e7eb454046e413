package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Tag is an image reference by tag, as a registry is asked about it.
type Tag struct {
	// Registry is the registry's host[:port] ("index.docker.io" for an
	// image named without one, as the container runtime pulls it).
	Registry string
	// Repository is the path in the registry ("library/nginx").
	Repository string
	// Tag is the tag ("latest" when the reference names none).
	Tag string
}

// Resolver finds the digest a registry serves for a tag now.
type Resolver interface {
	// Resolve returns the "sha256:HEX" digest of the manifest the
	// registry serves for t. It must honour ctx's deadline; its error
	// should name the registry and say why (package oci's errors do).
	Resolve(ctx context.Context, t Tag) (string, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, t Tag) (string, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, t Tag) (string, error) { return f(ctx, t) }

// ReasonMutated is the reason class of a /mutate answer that pinned at
// least one tag; the others are those of /validate (ReasonNoImages: no
// tag to pin, ReasonImageRef: a tag that could not be pinned, …).
const ReasonMutated = "mutated"

// patchOp is one JSON Patch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// pin is one image reference to pin: where, the reference as written, and
// the tag it names.
type pin struct {
	im  Image
	tag Tag
}

// Mutate answers a mutating admission request: every image the object
// would run that is referenced by tag (the images Images finds) is pinned
// to the digest its registry serves now, as "REF@sha256:HEX", by a JSON
// Patch that tests each reference before replacing it and touches nothing
// else. The validating webhook then decides on the digest in the spec,
// whatever the tag points to by then.
//
// It fails closed: a tag that cannot be resolved within the deadline (the
// registry errs, refuses, answers garbage or not at all, or is not one of
// Config.Registries) denies the request naming the registry and the reason,
// unless the request's mode (Config.Modes) is warn or audit, which admit it
// unpinned with a warning. A request naming more distinct tags than
// Config.MaxImages is denied before any registry is asked.
func (w *Webhook) Mutate(ctx context.Context, req *Request) *admissionv1.AdmissionResponse {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	resp, _ := w.mutate(ctx, req, w.cfg.Timeout)
	return resp
}

// mutate is Mutate under ctx, also returning the reason class.
func (w *Webhook) mutate(ctx context.Context, req *Request, timeout time.Duration) (*admissionv1.AdmissionResponse, string) {
	uid := types.UID(req.UID)
	switch admissionv1.Operation(req.Operation) {
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete, admissionv1.Connect:
		return allow(uid), ReasonOperation
	default:
		return deny(uid, fmt.Sprintf("operation %q is not one custody admission decides", req.Operation)), ReasonMalformed
	}
	imgs, err := images(req, true)
	if err != nil {
		return deny(uid, err.Error()), ReasonMalformed
	}
	pins, lines := w.pins(imgs)
	if len(lines) > 0 {
		return w.unpinned(ctx, req, lines, ReasonImageRef), ReasonImageRef
	}
	if len(pins) == 0 {
		return allow(uid), ReasonNoImages
	}
	digests, lines := w.resolveAll(ctx, pins, timeout)
	if len(lines) > 0 {
		return w.unpinned(ctx, req, lines, ReasonUndecided), ReasonUndecided
	}
	var ops []patchOp
	for _, p := range pins {
		if p.im.Pointer == "" {
			return deny(uid, "internal error: no pointer to "+p.im.Where), ReasonMalformed
		}
		ops = append(ops, patchOp{"test", p.im.Pointer, p.im.Ref}, patchOp{"replace", p.im.Pointer, p.im.Ref + "@" + digests[p.tag]})
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return deny(uid, "couldn't encode the patch"), ReasonMalformed
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp := allow(uid)
	resp.Patch, resp.PatchType = patch, &pt
	resp.AuditAnnotations = map[string]string{"pinned": fmt.Sprint(len(digests))}
	w.log.InfoContext(ctx, "admission pinned tags", "uid", clip(req.UID), "namespace", clip(req.Namespace), "kind", clip(req.Kind.Kind),
		"name", clip(req.Name), "images", len(pins), "tags", len(digests))
	return resp, ReasonMutated
}

// pins returns the images to pin (by tag) and a line for each reference
// that cannot be pinned, or one naming the cap when there are more
// distinct tags than Config.MaxImages.
func (w *Webhook) pins(imgs []Image) ([]pin, []string) {
	var pins []pin
	var lines []string
	distinct := map[Tag]bool{}
	for _, im := range imgs {
		if strings.Contains(im.Ref, "@") {
			continue // by digest (or an unsupported one): /validate decides
		}
		t, err := parseTag(im.Ref)
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s image %q: %v", im.Where, im.Ref, err))
			continue
		}
		if !w.registryAllowed(t.Registry) {
			lines = append(lines, fmt.Sprintf("%s image %q: registry %s is not one custody admission resolves tags at (%s); pin it by digest",
				im.Where, im.Ref, t.Registry, strings.Join(w.cfg.Registries, ", ")))
			continue
		}
		distinct[t] = true
		pins = append(pins, pin{im, t})
	}
	if len(distinct) > w.cfg.MaxImages {
		return nil, []string{fmt.Sprintf("the object names %d distinct image tags, more than the %d custody admission resolves in one request (--max-images); nothing was resolved",
			len(distinct), w.cfg.MaxImages)}
	}
	return pins, lines
}

// registryAllowed says whether tags may be resolved at registry: one of
// Config.Registries, or any when they hold "*".
func (w *Webhook) registryAllowed(registry string) bool {
	rs := w.cfg.Registries
	return slices.Contains(rs, "*") || slices.Contains(rs, registry) || registry == name.DefaultRegistry && slices.Contains(rs, "docker.io")
}

// parseTag reads an image reference by tag as the container runtime does
// (no registry: Docker Hub; no tag: latest).
func parseTag(ref string) (Tag, error) {
	if ref == "" {
		return Tag{}, errors.New("no image given")
	}
	r, err := name.NewTag(ref)
	if err != nil {
		return Tag{}, fmt.Errorf("not an image reference: %w", err)
	}
	return Tag{Registry: r.RegistryStr(), Repository: r.RepositoryStr(), Tag: r.TagStr()}, nil
}

// resolveAll resolves the distinct tags of pins, Config.Concurrency at a
// time and each taking an evaluation slot, all by ctx's deadline; it
// returns the digests, or a line for each tag that could not be resolved.
func (w *Webhook) resolveAll(ctx context.Context, pins []pin, timeout time.Duration) (map[Tag]string, []string) {
	var tags []Tag
	where := map[Tag]Image{}
	for _, p := range pins {
		if _, ok := where[p.tag]; !ok {
			where[p.tag] = p.im
			tags = append(tags, p.tag)
		}
	}
	digests := make([]string, len(tags))
	errs := make([]error, len(tags))
	var g errgroup.Group
	g.SetLimit(w.cfg.Concurrency)
	for i, t := range tags {
		g.Go(func() error {
			digests[i], errs[i] = w.resolve(ctx, t, timeout)
			return nil
		})
	}
	_ = g.Wait()
	out := make(map[Tag]string, len(tags))
	var lines []string
	for i, t := range tags {
		if errs[i] != nil {
			im := where[t]
			lines = append(lines, fmt.Sprintf("%s image %q: couldn't pin its tag to a digest: %v", im.Where, im.Ref, errs[i]))
			continue
		}
		out[t] = digests[i]
	}
	return out, lines
}

// resolve resolves one tag in an evaluation slot, by ctx's deadline, and
// checks the answer is a sha256 digest.
func (w *Webhook) resolve(ctx context.Context, t Tag, timeout time.Duration) (string, error) {
	late := fmt.Errorf("registry %s: no answer within the deadline (timeout %s)", t.Registry, timeout)
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-ctx.Done():
		w.metrics.evidenceErrors.WithLabelValues("busy").Inc()
		return "", late
	}
	type answer struct {
		d   string
		err error
	}
	done := make(chan answer, 1)
	go func() { // a resolver that ignores ctx must not hold the answer
		d, err := w.cfg.Resolver.Resolve(ctx, t)
		done <- answer{d, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		w.metrics.evidenceErrors.WithLabelValues("timeout").Inc()
		return "", late
	}
	switch {
	case a.err != nil && ctx.Err() != nil:
		w.metrics.evidenceErrors.WithLabelValues("timeout").Inc()
		return "", late
	case a.err != nil:
		w.metrics.evidenceErrors.WithLabelValues("fetch").Inc()
		if !strings.Contains(a.err.Error(), t.Registry) {
			return "", fmt.Errorf("registry %s: %w", t.Registry, a.err)
		}
		return "", a.err
	}
	if hex, ok := strings.CutPrefix(a.d, "sha256:"); !ok || !isLowerHex(hex, 64) {
		w.metrics.evidenceErrors.WithLabelValues("fetch").Inc()
		return "", fmt.Errorf("registry %s: resolving tag %s gave %q, not a sha256 digest", t.Registry, t.Tag, clip(a.d))
	}
	return a.d, nil
}

// unpinned answers a request whose tags could not all be pinned: denied,
// or in warn and audit mode admitted unpinned (nothing patched) with the
// reasons as warnings and counted.
func (w *Webhook) unpinned(ctx context.Context, req *Request, lines []string, reason string) *admissionv1.AdmissionResponse {
	env := w.Environment(req.Namespace)
	mode := w.cfg.Modes.Of(req.Namespace, env)
	w.log.InfoContext(ctx, "admission couldn't pin tags", "uid", clip(req.UID), "namespace", clip(req.Namespace), "kind", clip(req.Kind.Kind),
		"name", clip(req.Name), "mode", string(mode), "reasons", len(lines), "first", clip(lines[0]))
	if mode == ModeEnforce {
		return deny(types.UID(req.UID), lines...)
	}
	w.metrics.wouldDeny.WithLabelValues(string(mode), env, reason).Inc()
	resp := allow(types.UID(req.UID))
	resp.AuditAnnotations = map[string]string{"mode": string(mode), "would-deny": truncate(strings.Join(strings.Fields(lines[0]), " "), MaxLineBytes)}
	if mode == ModeWarn {
		resp.Warnings = warnings(env, lines)
	}
	return resp
}
