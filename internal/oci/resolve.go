package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of what custody reads and writes.
const (
	BundleMediaType   = "application/vnd.dev.sigstore.bundle.v0.3+json"
	emptyMediaType    = "application/vnd.oci.empty.v1+json"
	dsseMediaType     = "application/vnd.dsse.envelope.v1+json"
	simpleSigningType = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// imageTypes are the manifest types a reference may name.
var imageTypes = []types.MediaType{
	types.OCIManifestSchema1, types.OCIImageIndex,
	types.DockerManifestSchema2, types.DockerManifestList,
}

// Resolve returns r pinned to a digest. A pinned r is returned as it is,
// without a network call; a tag is resolved by fetching its manifest and
// hashing the bytes received (the registry's Docker-Content-Digest header is
// not trusted). Resolve once and use the digest from then on: a tag can move.
func (c *Client) Resolve(ctx context.Context, r Ref) (Ref, error) {
	if r.Pinned() {
		return r, nil
	}
	if r.Tag == "" {
		r.Tag = "latest"
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	repo, err := c.repo(r)
	if err != nil {
		return r, fail(r.Registry, "", err)
	}
	m, err := c.manifest(ctx, repo.Tag(r.Tag), "", nil, imageTypes)
	if err != nil {
		return r, fail(r.Registry, "resolving tag "+r.Tag, err)
	}
	return r.WithDigest(m.digest), nil
}

// fetched is a manifest read from a registry, its digest computed here.
type fetched struct {
	raw       []byte
	digest    string
	mediaType types.MediaType
}

// manifest GETs one manifest (by tag, or by digest when want is set), reads
// at most MaxManifestBytes, and checks the bytes hash to want.
func (c *Client) manifest(ctx context.Context, ref name.Reference, want string, opts []remote.Option, accept []types.MediaType) (*fetched, error) {
	if opts == nil {
		opts = c.remoteOpts(ctx)
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	if len(desc.Manifest) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest %s: %w (over %d bytes)", ref.Identifier(), ErrTooLarge, MaxManifestBytes)
	}
	sum := sha256.Sum256(desc.Manifest)
	got := "sha256:" + hex.EncodeToString(sum[:])
	if want != "" && got != want {
		return nil, fmt.Errorf("%w: asked for manifest %s, got %s", ErrDigestMismatch, want, got)
	}
	var head struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(desc.Manifest, &head); err != nil {
		return nil, fmt.Errorf("manifest %s is not JSON", ref.Identifier())
	}
	mt := head.MediaType
	if mt == "" {
		mt = desc.MediaType
	}
	if !slices.Contains(accept, mt) {
		return nil, fmt.Errorf("manifest %s has media type %q, want one of %v", ref.Identifier(), oneLine(string(mt)), accept)
	}
	return &fetched{raw: desc.Manifest, digest: got, mediaType: mt}, nil
}

// blob GETs one blob by digest, reading at most limit bytes, and checks the
// bytes hash to d.
func (c *Client) blob(repo name.Repository, d string, limit int64, opts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(d), opts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := readAll(rc, limit)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d {
		return nil, fmt.Errorf("%w: asked for blob %s, got %s", ErrDigestMismatch, d, got)
	}
	return b, nil
}

// hashOf is the "sha256:HEX" digest of b.
func hashOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
