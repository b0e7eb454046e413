package admission

import (
	"context"
	"encoding/json"

	"github.com/custody-dev/custody/attest"
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
//
// The index also holds the decisions (VSAs) about the digest, the
// webhook's own among them; they are not evidence for a new decision and
// are left out here, before they cost a signature verification each. (The
// server still sends them: the search has no way to exclude a predicate
// type.)
func ServerSource(cl *client.Client) Source {
	return SourceFunc(func(ctx context.Context, digest string) ([]gate.Bundle, error) {
		bs, err := gate.FromServer(ctx, cl, digest)
		if err != nil {
			return nil, err
		}
		return withoutDecisions(bs), nil
	})
}

// withoutDecisions drops the bundles whose statement (read unverified) is a
// SLSA VSA. A bundle that does not parse is kept, so that it is reported.
func withoutDecisions(bs []gate.Bundle) []gate.Bundle {
	out := bs[:0:0]
	for _, b := range bs {
		if predicateType(b.JSON) == attest.PredicateVSA {
			continue
		}
		out = append(out, b)
	}
	return out
}

// predicateType reads the predicate type of a DSSE bundle's statement,
// unverified; "" when it cannot.
func predicateType(bundleJSON []byte) string {
	var b struct {
		DSSEEnvelope struct {
			Payload []byte `json:"payload"`
		} `json:"dsseEnvelope"`
	}
	if json.Unmarshal(bundleJSON, &b) != nil {
		return ""
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(b.DSSEEnvelope.Payload, &st) != nil {
		return ""
	}
	return st.PredicateType
}

// DirSource reads the bundles under dir (gate.ReadDir) on every call, so
// evidence added to the directory counts from the next cache miss, and keeps
// those whose statement names the digest and the review attestations of its
// source commits (gate.ForArtifact, read unverified: Gather verifies them),
// except decisions (VSAs, such as those custody deploy writes to
// DIR/decisions). Bundles that do not parse are kept so that they are
// reported.
func DirSource(dir string) Source {
	return SourceFunc(func(ctx context.Context, digest string) ([]gate.Bundle, error) {
		all, err := gate.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return withoutDecisions(gate.ForArtifact(all, digest)), nil
	})
}
