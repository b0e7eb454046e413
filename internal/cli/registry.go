package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/verify"
)

// registryFlags are the flags of every command that takes an oci:// image.
type registryFlags struct {
	config, ca string
	insecure   []string
	timeout    time.Duration
}

func addRegistryFlags(fl *pflag.FlagSet, f *registryFlags) {
	fl.StringVar(&f.config, "registry-config", "", "Docker config.json with registry credentials and credential helpers (default: the standard locations)")
	fl.StringVar(&f.ca, "registry-ca", "", "PEM bundle of CAs trusted for registry TLS, besides the system's")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry HOST[:PORT] that may be reached over plain HTTP (repeatable)")
	fl.DurationVar(&f.timeout, "registry-timeout", oci.DefaultTimeout, "give up on a registry operation after this long")
}

func (f *registryFlags) client() (*oci.Client, error) {
	c, err := oci.New(oci.Options{ConfigPath: f.config, CAFile: f.ca, Insecure: f.insecure, Timeout: f.timeout})
	if err != nil {
		return nil, usageErr(err, "")
	}
	return c, nil
}

// registryErr gives a registry failure its exit code: 2 for a reference
// the registry does not have, 3 for a registry that failed or misbehaved.
func registryErr(err error) error {
	switch {
	case errors.Is(err, oci.ErrRef), errors.Is(err, oci.ErrNotBundle):
		return usageErr(err, "")
	case errors.Is(err, oci.ErrNotFound):
		return usageErr(err, "check the image reference; custody never guesses another registry")
	case errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: ExitUnreachable, err: err, hint: "raise --registry-timeout if the registry is only slow"}
	}
	return &exitError{code: ExitUnreachable, err: err, hint: ""}
}

// image is an oci:// artifact argument, its tag resolved once.
type image struct {
	ref oci.Ref
	cl  *oci.Client
}

// digest is "sha256:HEX".
func (im *image) digest() string { return im.ref.Digest }

// resolveImage parses arg (which must be an oci:// reference), resolves a
// tag to its digest once, and prints the pinned reference on stderr: from
// then on only the digest is used.
func resolveImage(ctx context.Context, s *streams, f *registryFlags, arg string) (*image, error) {
	ref, err := oci.ParseRef(arg)
	if err != nil {
		return nil, usageErr(err, "write the image as oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]")
	}
	cl, err := f.client()
	if err != nil {
		return nil, err
	}
	pinned, err := cl.Resolve(ctx, ref)
	if err != nil {
		return nil, registryErr(err)
	}
	if ref.Pinned() {
		fmt.Fprintf(s.err, "image %s\n", pinned)
	} else {
		fmt.Fprintf(s.err, "image %s resolved to %s\n", ref, pinned)
	}
	return &image{ref: pinned, cl: cl}, nil
}

// bundles reads the evidence attached to the image in its registry, as
// gate bundles named by where they were found. cosign .sig signatures are
// left out: they sign a payload naming the image, not a statement.
func (im *image) bundles(ctx context.Context) ([]gate.Bundle, error) {
	found, err := im.cl.Evidence(ctx, im.ref)
	if err != nil {
		return nil, registryErr(err)
	}
	var out []gate.Bundle
	for _, f := range found {
		if f.Format == oci.FormatCosignSignature {
			continue
		}
		out = append(out, gate.Bundle{Name: im.ref.Registry + ": " + f.Source, JSON: f.Bundle})
	}
	return out, nil
}

// registryVerdict is verify oci://'s result.
type registryVerdict struct {
	Verified bool               `json:"verified"`
	Image    string             `json:"image"`
	Evidence []registryEvidence `json:"evidence"`
}

type registryEvidence struct {
	Source string         `json:"source"`
	Report *verify.Report `json:"report"`
	// NotProvenance: evidence that is not SLSA provenance when no predicate
	// type was required; listed apart, neither a pass nor a failure.
	NotProvenance bool `json:"notProvenance,omitempty"`
}

// verifyFromRegistry verifies every bundle attached to the image exactly as
// verify does a bundle file. It passes when at least one provenance bundle
// verifies; the registry can withhold bundles, never make one verify.
func verifyFromRegistry(ctx context.Context, s *streams, f *verifyFlags, im *image) error {
	tm, err := trustMaterial(f)
	if err != nil {
		return err
	}
	req, err := f.requirements()
	if err != nil {
		return err
	}
	bundles, err := im.bundles(ctx)
	if err != nil {
		return err
	}
	art := verify.Artifact{Digests: map[string]string{"sha256": im.ref.Hex()}}
	v := registryVerdict{Image: im.ref.String(), Evidence: []registryEvidence{}}
	for _, b := range bundles {
		rep, err := verify.Verify(ctx, b.JSON, art, tm, req)
		if err != nil {
			rep = &verify.Report{Checks: []verify.Check{{Name: "bundle", Reason: err.Error()}}}
		}
		v.Evidence = append(v.Evidence, registryEvidence{Source: b.Name, Report: rep, NotProvenance: notProvenance(rep, req)})
		v.Verified = v.Verified || rep.Verified && !notProvenance(rep, req)
	}
	if f.jsonOut {
		if err := writeJSON(s.out, v); err != nil {
			return err
		}
	} else {
		printRegistryVerdict(s.out, &v)
	}
	switch {
	case len(bundles) == 0:
		return failErr(fmt.Errorf("no evidence attached to %s in its registry", im.ref),
			"attach it with custody attest/build --attach, or verify --bundle FILE or --server URL")
	case !v.Verified:
		return failErr(errors.New("verification failed: no provenance attached to the image verifies"), "")
	}
	return nil
}

func printRegistryVerdict(w io.Writer, v *registryVerdict) {
	fmt.Fprintf(w, "%d bundle(s) attached to %s\n", len(v.Evidence), v.Image)
	items := make([]listedEvidence, 0, len(v.Evidence))
	for _, e := range v.Evidence {
		items = append(items, listedEvidence{label: e.Source, rep: e.Report, other: e.NotProvenance, ok: e.Report.Verified})
	}
	printEvidenceList(w, items, v.Verified)
}

// splitImages separates oci:// references from file arguments. Only the
// oci:// prefix makes an argument an image: a mistyped path stays a path.
func splitImages(args []string) (files, images []string) {
	for _, a := range args {
		if oci.IsRef(a) {
			images = append(images, a)
		} else {
			files = append(files, a)
		}
	}
	return files, images
}

// resolveImages resolves every oci:// argument once.
func resolveImages(ctx context.Context, s *streams, f *registryFlags, args []string) ([]*image, error) {
	var out []*image
	for _, a := range args {
		im, err := resolveImage(ctx, s, f, a)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, nil
}

// subject is the in-toto subject naming the image: its repository (as
// cosign names it) and its manifest digest.
func (im *image) subject() attest.Subject {
	return attest.Subject{Name: im.ref.Registry + "/" + im.ref.Repository, Digest: map[string]string{"sha256": im.ref.Hex()}}
}

// attachedBundle is one bundle attached to an image.
type attachedBundle struct {
	Image    string `json:"image"`
	Referrer string `json:"referrer"`
}

// attestResult is attest --json's output.
type attestResult struct {
	build.SignedBundle
	Attached []attachedBundle `json:"attached,omitempty"`
}

// attachAll attaches bundle b to every image.
func attachAll(ctx context.Context, ims []*image, b []byte) ([]attachedBundle, error) {
	var out []attachedBundle
	for _, im := range ims {
		d, err := im.cl.Attach(ctx, im.ref, b)
		if err != nil {
			return nil, registryErr(err)
		}
		out = append(out, attachedBundle{Image: im.ref.String(), Referrer: d})
	}
	return out, nil
}

// takeImage resolves an oci:// artifact argument once: its digest becomes
// f.digest (so the command goes on as with --digest) and its registry one
// more evidence source. Other arguments are returned as they are.
func (f *policyFlags) takeImage(ctx context.Context, s *streams, args []string) ([]string, error) {
	im, args, err := imageArg(ctx, s, &f.registry, &f.digest, args)
	if im != nil {
		f.image = im
	}
	return args, err
}

// imageArg resolves a lone oci:// argument and sets *digestFlag to its
// digest; any other arguments are returned as they are, with a nil image.
func imageArg(ctx context.Context, s *streams, rf *registryFlags, digestFlag *string, args []string) (*image, []string, error) {
	if len(args) != 1 || !oci.IsRef(args[0]) {
		return nil, args, nil
	}
	if *digestFlag != "" {
		return nil, nil, usageErr(errors.New("give either an image or --digest, not both"), "")
	}
	im, err := resolveImage(ctx, s, rf, args[0])
	if err != nil {
		return nil, nil, err
	}
	*digestFlag = im.digest()
	return im, nil, nil
}

// builtAndAttached is build --json's output with --attach.
type builtAndAttached struct {
	*build.Released
	Attached []attachedBundle `json:"attached,omitempty"`
}

// attachClient checks, before the build runs, that build --attach has an
// image among its subjects, each a valid pinned reference.
func attachClient(f *buildFlags, subjects []attest.Subject) (*oci.Client, error) {
	n := 0
	for _, sub := range subjects {
		if !oci.IsRef(sub.Name) {
			continue
		}
		if _, err := subjectRef(sub); err != nil {
			return nil, usageErr(fmt.Errorf("--subject %s: %w", sub.Name, err), "use --subject oci://HOST/REPO@sha256:HEX")
		}
		n++
	}
	if n == 0 {
		return nil, usageErr(errors.New("--attach needs an image subject"), "name it with --subject oci://HOST/REPO@sha256:HEX")
	}
	return f.registry.client()
}

// subjectRef is the image a subject named oci://HOST/REPO[:TAG] is.
func subjectRef(sub attest.Subject) (oci.Ref, error) {
	return oci.ParseRef(sub.Name + "@sha256:" + sub.Digest["sha256"])
}

// attachBuild attaches every bundle build wrote (provenance, SBOM, scan)
// to the images among its subjects. A nil client attaches nothing.
func attachBuild(ctx context.Context, cl *oci.Client, rel *build.Released) ([]attachedBundle, error) {
	if cl == nil {
		return nil, nil
	}
	var out []attachedBundle
	for _, group := range [][]build.SignedBundle{rel.Bundles, rel.SBOMs, rel.Scans} {
		for _, sb := range group {
			b, err := readLimited(sb.Bundle, maxBundleBytes)
			if err != nil {
				return out, usageErr(fmt.Errorf("couldn't read bundle to attach: %w", err), "")
			}
			for _, sub := range sb.Subjects {
				ref, err := subjectRef(sub)
				if !oci.IsRef(sub.Name) || err != nil {
					continue
				}
				d, err := cl.Attach(ctx, ref, b)
				if err != nil {
					return out, registryErr(err)
				}
				out = append(out, attachedBundle{Image: ref.String(), Referrer: d})
			}
		}
	}
	return out, nil
}

// deployImage resolves deploy's and promote's oci:// artifact once: the
// gate deploys the pinned reference (the deploy command gets it as
// {artifact}), and the image's registry is one more evidence source.
func (f *deployFlags) deployImage(ctx context.Context, s *streams, args []string) ([]string, error) {
	if len(args) != 1 || !oci.IsRef(args[0]) {
		if f.attach {
			return nil, usageErr(errors.New("--attach needs an oci:// image to deploy"), "")
		}
		return args, nil
	}
	if f.evidence == "" && f.server == "" && !f.attach {
		// The signed decisions need a home.
		return nil, usageErr(errors.New("deploy records its decisions in --evidence DIR, on --server URL, or beside the image (--attach)"),
			"pass --attach to keep them in the image's registry, or --evidence DIR (the registry is read as well)")
	}
	if _, err := f.takeImage(ctx, s, args); err != nil {
		return nil, err
	}
	pinned := f.image.ref
	pinned.Tag = ""
	return []string{pinned.String()}, nil
}

// attachDecision attaches a signed decision about digest dg to the image
// im names, or to dg in the same repository (a rollback's earlier image).
func attachDecision(ctx context.Context, im *image, dg string, bundle []byte) error {
	if _, err := im.cl.Attach(ctx, im.ref.WithDigest(dg), bundle); err != nil {
		return registryErr(err)
	}
	return nil
}
