package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format says where a Found bundle came from.
type Format string

const (
	// FormatReferrer: an OCI 1.1 referrer holding a Sigstore bundle, listed
	// by the referrers API or the referrers tag-schema index.
	FormatReferrer Format = "referrer"
	// FormatCosignAttestation: a layer of cosign's `sha256-HEX.att` tag
	// (a DSSE envelope), turned into a Sigstore bundle.
	FormatCosignAttestation Format = "cosign-att"
	// FormatCosignSignature: a layer of cosign's `sha256-HEX.sig` tag (a
	// signed simple-signing payload), turned into a Sigstore bundle whose
	// artifact is Payload, not the image.
	FormatCosignSignature Format = "cosign-sig"
)

// Found is one bundle read from a registry. Nothing in it is trusted until
// the caller verifies Bundle.
type Found struct {
	Bundle []byte // Sigstore bundle JSON
	Format Format
	Source string // where it was read, e.g. "referrer sha256:…" or "tag sha256-….att layer 1"
	// Payload is the signed simple-signing payload of a FormatCosignSignature
	// bundle (the artifact its signature is over).
	Payload []byte
}

// Evidence returns every Sigstore bundle attached to the image r names: its
// OCI 1.1 referrers of artifact type BundleMediaType (from the referrers
// API, or from the `sha256-HEX` tag index on registries without it), and the
// layers of cosign's older `sha256-HEX.att` and `.sig` tags. A tag in r is
// resolved first (use Resolve yourself to learn the digest).
//
// A referrer whose manifest names another subject, has another artifact
// type, or does not hash to its digest is skipped (and logged): the registry
// serving it gets no say in what it means. Exceeding MaxReferrers or
// MaxLayers, or any registry failure, is an *Error: withheld evidence is
// never reported as absent evidence.
func (c *Client) Evidence(ctx context.Context, r Ref) ([]Found, error) {
	r, err := c.Resolve(ctx, r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	repo, err := c.repo(r)
	if err != nil {
		return nil, fail(r.Registry, "", err)
	}
	p, err := remote.NewPuller(c.remoteOpts(ctx)...)
	if err != nil {
		return nil, fail(r.Registry, "", err)
	}
	opts := append(c.remoteOpts(ctx), remote.Reuse(p))
	found, err := c.referrers(ctx, repo, r.Digest, opts)
	if err != nil {
		return nil, fail(r.Registry, "listing referrers of "+r.Digest, err)
	}
	for _, suffix := range []string{".att", ".sig"} {
		more, err := c.cosignTag(ctx, repo, r.Digest, suffix, opts)
		if err != nil {
			return nil, fail(r.Registry, "reading tag "+fallbackTag(r.Digest)+suffix, err)
		}
		found = append(found, more...)
	}
	return found, nil
}

// fallbackTag is the referrers tag-schema tag of digest d: sha256-HEX.
func fallbackTag(d string) string { return strings.Replace(d, ":", "-", 1) }

// referrers lists the bundle referrers of subject and reads each bundle.
func (c *Client) referrers(ctx context.Context, repo name.Repository, subject string, opts []remote.Option) ([]Found, error) {
	idx, err := remote.Referrers(repo.Digest(subject), opts...)
	if err != nil {
		return nil, err
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxManifestBytes {
		return nil, fmt.Errorf("referrers list: %w (over %d bytes)", ErrTooLarge, MaxManifestBytes)
	}
	var list v1.IndexManifest
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("referrers list is not an OCI image index")
	}
	if len(list.Manifests) > MaxReferrers {
		return nil, fmt.Errorf("more than %d referrers", MaxReferrers)
	}
	var found []Found
	seen := map[string]bool{}
	for _, d := range list.Manifests {
		dg := d.Digest.String()
		// The manifest's own artifactType decides; some registries list
		// the config's media type (the empty type) instead.
		if seen[dg] || !slices.Contains([]string{"", BundleMediaType, emptyMediaType}, d.ArtifactType) {
			continue
		}
		seen[dg] = true
		if !validDigest(dg) {
			c.log.Warn("skipping referrer with a non-sha256 digest", "registry", repo.RegistryStr(), "digest", oneLine(dg))
			continue
		}
		b, err := c.referrer(ctx, repo, subject, dg, opts)
		if err != nil {
			return nil, err
		}
		if b != nil {
			found = append(found, Found{Bundle: b, Format: FormatReferrer, Source: "referrer " + dg})
		}
	}
	return found, nil
}

// referrer reads one referrer manifest and its bundle blob; nil when the
// manifest is not a bundle of subject.
func (c *Client) referrer(ctx context.Context, repo name.Repository, subject, dg string, opts []remote.Option) ([]byte, error) {
	m, err := c.manifest(ctx, repo.Digest(dg), dg, opts, imageTypes)
	if err != nil {
		return nil, err
	}
	skip := func(why string) ([]byte, error) {
		c.log.Warn("skipping referrer", "registry", repo.RegistryStr(), "referrer", dg, "reason", why)
		return nil, nil
	}
	var man v1.Manifest
	if m.mediaType != types.OCIManifestSchema1 || json.Unmarshal(m.raw, &man) != nil {
		// An index here is never followed: no nesting, no loops.
		return skip("not an OCI image manifest")
	}
	artifactType := man.ArtifactType
	if artifactType == "" {
		artifactType = string(man.Config.MediaType)
	}
	switch {
	case man.Subject == nil || man.Subject.Digest.String() != subject:
		return skip("names another subject")
	case artifactType != BundleMediaType:
		return skip("artifact type is not a Sigstore bundle")
	case len(man.Layers) == 0 || string(man.Layers[0].MediaType) != BundleMediaType:
		return skip("first layer is not a Sigstore bundle")
	case man.Layers[0].Size > MaxBundleBytes:
		return nil, fmt.Errorf("referrer %s: bundle of %d bytes: %w (over %d bytes)", dg, man.Layers[0].Size, ErrTooLarge, MaxBundleBytes)
	case !validDigest(man.Layers[0].Digest.String()):
		return skip("bundle digest is not sha256")
	}
	return c.blob(repo, man.Layers[0].Digest.String(), MaxBundleBytes, opts)
}
