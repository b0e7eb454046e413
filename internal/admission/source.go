package admission

import (
	"context"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
)

// Source finds the bundles about an artifact digest ("sha256:HEX"). It must
// honour ctx's deadline; an error denies the request and is never cached.
type Source interface {
	Bundles(ctx context.Context, digest string) ([]gate.Bundle, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, digest string) ([]gate.Bundle, error)

// Bundles calls f.
func (f SourceFunc) Bundles(ctx context.Context, digest string) ([]gate.Bundle, error) {
	return f(ctx, digest)
}

// ServerSource finds bundles in a custody server's evidence index
// (gate.FromServer). Errors wrap client.ErrUnreachable for a server that
// cannot be reached.
func ServerSource(cl *client.Client) Source {
	return SourceFunc(func(ctx context.Context, digest string) ([]gate.Bundle, error) {
		return gate.FromServer(ctx, cl, digest)
	})
}

// DirSource reads the bundles under dir (gate.ReadDir) on every call, so
// evidence added to the directory counts from the next cache miss, and keeps
// those whose statement names the digest and the review attestations of its
// source commits (gate.ForArtifact, read unverified: Gather verifies them).
// Bundles that do not parse are kept so that they are reported.
func DirSource(dir string) Source {
	return SourceFunc(func(ctx context.Context, digest string) ([]gate.Bundle, error) {
		all, err := gate.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out := gate.ForArtifact(all, digest)
		return out, nil
	})
}
