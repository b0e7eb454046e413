package admission

import (
	"context"
	"fmt"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/oci"
)

// OCIResolver resolves tags with cl (package oci: the manifest the
// registry serves is hashed here; errors name the registry).
func OCIResolver(cl *oci.Client) Resolver {
	return ResolverFunc(func(ctx context.Context, t Tag) (string, error) {
		r, err := cl.Resolve(ctx, oci.Ref{Registry: t.Registry, Repository: t.Repository, Tag: t.Tag})
		return r.Digest, err
	})
}

// OCIAttached reads the evidence attached to images with cl (referrers,
// the tag-schema fallback, cosign's .att and .sig tags).
func OCIAttached(cl *oci.Client) Attached {
	return AttachedFunc(func(ctx context.Context, registry, repository, digest string) ([]gate.Bundle, error) {
		found, err := cl.Evidence(ctx, oci.Ref{Registry: registry, Repository: repository, Digest: digest})
		if err != nil {
			return nil, err
		}
		out := make([]gate.Bundle, len(found))
		for i, b := range found {
			out[i] = gate.Bundle{Name: fmt.Sprintf("oci://%s/%s@%s %s", registry, repository, digest, b.Source), JSON: b.Bundle}
		}
		return out, nil
	})
}
