package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrNotBundle is returned by Attach for bytes that are not a Sigstore
// bundle.
var ErrNotBundle = errors.New("not a Sigstore bundle")

// Attach stores bundleJSON beside the image r names, as cosign's new bundle
// format does: the bundle as a blob, and an OCI 1.1 manifest of artifact
// type BundleMediaType whose subject is the image. A registry with the
// referrers API lists it by itself; on one without, the `sha256-HEX` tag
// index is updated with a conditional write that is read back (fallback.go
// says how far that protects concurrent writers).
// It returns the digest of the referrer manifest. The manifest carries no
// time, so attaching the same bundle twice stores it once.
func (c *Client) Attach(ctx context.Context, r Ref, bundleJSON []byte) (string, error) {
	ann, err := bundleAnnotations(bundleJSON)
	if err != nil {
		return "", err
	}
	r, err = c.Resolve(ctx, r)
	if err != nil {
		return "", err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	repo, err := c.repo(r)
	if err != nil {
		return "", fail(r.Registry, "", err)
	}
	p, err := remote.NewPusher(c.remoteOpts(ctx)...)
	if err != nil {
		return "", fail(r.Registry, "", err)
	}
	opts := append(c.remoteOpts(ctx), remote.Reuse(p))
	subj, err := c.manifest(ctx, repo.Digest(r.Digest), r.Digest, opts, imageTypes)
	if err != nil {
		return "", fail(r.Registry, "reading image "+r.Digest, err)
	}
	bundle := static.NewLayer(bundleJSON, types.MediaType(BundleMediaType))
	empty := static.NewLayer([]byte("{}"), types.MediaType(emptyMediaType))
	for _, l := range []v1.Layer{empty, bundle} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return "", fail(r.Registry, "uploading bundle", err)
		}
	}
	bd := hashOf(bundleJSON)
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  BundleMediaType,
		Config:        v1.Descriptor{MediaType: emptyMediaType, Digest: hashOf([]byte("{}")), Size: 2},
		Layers: []v1.Descriptor{{
			MediaType:   BundleMediaType,
			Digest:      bd,
			Size:        int64(len(bundleJSON)),
			Annotations: map[string]string{"org.opencontainers.image.title": "sha256-" + bd.Hex + ".sigstore.json"},
		}},
		Annotations: ann,
		Subject:     &v1.Descriptor{MediaType: subj.mediaType, Digest: hashOf(subj.raw), Size: int64(len(subj.raw))},
	}
	raw, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	add := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hashOf(raw), Size: int64(len(raw)), ArtifactType: BundleMediaType, Annotations: ann}
	if err := c.putReferrer(ctx, repo, raw, add, r.Digest); err != nil {
		return "", fail(r.Registry, "writing referrer", err)
	}
	return add.Digest.String(), nil
}

// bundleAnnotations checks that b looks like a Sigstore bundle and returns
// the annotations cosign's bundle spec names: what the bundle holds and,
// for a DSSE statement, its predicate type.
func bundleAnnotations(b []byte) (map[string]string, error) {
	if len(b) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotBundle, MaxBundleBytes)
	}
	var bun struct {
		MediaType        string                    `json:"mediaType"`
		DSSE             *struct{ Payload []byte } `json:"dsseEnvelope"`
		MessageSignature json.RawMessage           `json:"messageSignature"`
	}
	if err := json.Unmarshal(b, &bun); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBundle, err)
	}
	switch {
	case bun.MediaType == "":
		return nil, fmt.Errorf("%w: no mediaType", ErrNotBundle)
	case bun.DSSE != nil:
		ann := map[string]string{"dev.sigstore.bundle.content": "dsse-envelope"}
		var st struct {
			PredicateType string `json:"predicateType"`
		}
		if json.Unmarshal(bun.DSSE.Payload, &st) == nil && st.PredicateType != "" {
			ann["dev.sigstore.bundle.predicateType"] = st.PredicateType
		}
		return ann, nil
	case len(bun.MessageSignature) > 0:
		return map[string]string{"dev.sigstore.bundle.content": "message-signature"}, nil
	}
	return nil, fmt.Errorf("%w: neither a DSSE envelope nor a message signature", ErrNotBundle)
}
