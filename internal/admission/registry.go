package admission

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/gate"
)

// Attached finds the evidence attached to an image in its registry (OCI
// 1.1 referrers, their tag-schema fallback, cosign's .att and .sig tags:
// package oci's Client.Evidence).
type Attached interface {
	// Evidence returns the bundles attached to registry/repository@digest.
	// It must honour ctx's deadline; its error should name the registry
	// and say why. Bundles are verified by the webhook like any other.
	Evidence(ctx context.Context, registry, repository, digest string) ([]gate.Bundle, error)
}

// AttachedFunc adapts a function to Attached.
type AttachedFunc func(ctx context.Context, registry, repository, digest string) ([]gate.Bundle, error)

// Evidence calls f.
func (f AttachedFunc) Evidence(ctx context.Context, registry, repository, digest string) ([]gate.Bundle, error) {
	return f(ctx, registry, repository, digest)
}

// unit is what one image is decided as: its digest, and with registry
// evidence (Config.Attached) the repository the evidence is read from,
// "DIGEST REGISTRY/REPOSITORY", so that evidence attached in one
// repository decides only the images pulled from it. The problem is set
// when the image's registry cannot be read (not a reference, or a registry
// not in Config.Registries).
func (w *Webhook) unit(im Image) (unit, problem string) {
	if w.cfg.Attached == nil {
		return im.Digest, ""
	}
	ref, err := name.NewDigest(im.Ref)
	if err != nil {
		return im.Digest, fmt.Sprintf("couldn't read its registry and repository: %v", err)
	}
	reg := ref.Context().RegistryStr()
	if !w.registryAllowed(reg) {
		return im.Digest, fmt.Sprintf("registry %s is not one custody admission reads evidence from (%s)", reg, strings.Join(w.cfg.Registries, ", "))
	}
	return im.Digest + " " + reg + "/" + ref.Context().RepositoryStr(), ""
}

// splitUnit is the digest and repository ("" for none) of a unit.
func splitUnit(unit string) (digest, repo string) {
	digest, repo, _ = strings.Cut(unit, " ")
	return digest, repo
}

// bundles finds the bundles about digest: Config.Source's, and those
// attached to it in repo ("REGISTRY/REPOSITORY", when not empty), except
// decisions (VSAs). An error of either fails the fetch.
func (w *Webhook) bundles(ctx context.Context, digest, repo string) ([]gate.Bundle, error) {
	var out []gate.Bundle
	if w.cfg.Source != nil {
		bs, err := w.cfg.Source.Bundles(ctx, digest)
		if err != nil {
			return nil, err
		}
		out = bs
	}
	if repo != "" {
		reg, path, _ := strings.Cut(repo, "/")
		bs, err := w.cfg.Attached.Evidence(ctx, reg, path, digest)
		if err != nil {
			if !strings.Contains(err.Error(), reg) {
				err = fmt.Errorf("registry %s: %w", reg, err)
			}
			return nil, err
		}
		out = append(out, withoutDecisions(bs)...)
	}
	return out, nil
}
